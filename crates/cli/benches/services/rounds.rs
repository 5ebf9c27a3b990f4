//! Store round trips on the critical path. On a real object store every
//! request costs tens of milliseconds before its first byte, so end-to-end
//! time is about `rounds × latency + compute`; a loopback server hides it.
//!
//! One set of the four functions runs against the testkit S3 server; calls
//! alternate between no added latency and every request held for `latency`
//! (so drift of the machine cancels out). The difference of the two medians
//! divided by the latency is the number of store requests made one after
//! another in a call: its round trips.

use std::time::Duration;

use stacking_testkit::s3::S3Server;

use super::harness::{launch, Caller, Workers};
use super::median;

/// One configuration's figures.
pub(super) struct Rounds {
    pub(super) trainers: usize,
    pub(super) concurrent: bool,
    pub(super) requests_per_call: f64,
    pub(super) plain_ms: f64,
    pub(super) delayed_ms: f64,
    pub(super) latency: Duration,
}

impl Rounds {
    /// Round trips on the critical path.
    pub(super) fn rounds(&self) -> f64 {
        (self.delayed_ms - self.plain_ms) / (self.latency.as_secs_f64() * 1e3)
    }

    /// What the data flow needs: the dataset goes up; each trainer reads
    /// and then writes (all at once when concurrent); the reducer and the
    /// metatrainer read and then write; the driver reads the model back.
    pub(super) fn minimum(&self) -> usize {
        let trainer_rounds = if self.concurrent {
            2
        } else {
            2 * self.trainers
        };
        1 + trainer_rounds + 2 + 2 + 1
    }

    pub(super) fn print(&self) {
        let rounds = self.rounds();
        let goal = self.minimum() + 1;
        let verdict = if rounds <= goal as f64 + 0.5 {
            "ok"
        } else {
            "MISSED"
        };
        println!(
            "{:>2} trainers {:<10} {:>5.1} requests/call, {:>5.1} round trips at {:>3} ms (minimum {:>2}, goal <= {:>2} {verdict}); {:>6.1} ms at 0 ms, {:>7.1} ms at {} ms",
            self.trainers,
            if self.concurrent { "concurrent" } else { "sequential" },
            self.requests_per_call,
            rounds,
            self.latency.as_millis(),
            self.minimum(),
            goal,
            self.plain_ms,
            self.delayed_ms,
            self.latency.as_millis(),
        );
    }
}

/// Every configuration (4 and 16 trainers, sequential and concurrent) at
/// one added latency, `runs` pairs of calls each.
pub(super) async fn measure(
    s3: &S3Server,
    env: &[(String, String)],
    latency: Duration,
    runs: usize,
) -> Vec<Rounds> {
    let workers = Workers::launch(env).await;
    let mut out = Vec::new();
    for (trainers, concurrent) in [(4, false), (4, true), (16, false), (16, true)] {
        let mut env = env.to_vec();
        env.push(("CONCURRENT_TRAINING".into(), concurrent.to_string()));
        let (driver, _) = launch("driver", &workers.driver_args(trainers), &env).await;
        let mut caller = Caller::connect(driver.port).await;
        let (mut plain, mut delayed, mut requests) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            s3.set_latency(Duration::ZERO);
            let before = s3.request_count();
            plain.push(caller.call_ms().await);
            requests += s3.request_count() - before;
            s3.set_latency(latency);
            delayed.push(caller.call_ms().await);
        }
        s3.set_latency(Duration::ZERO);
        out.push(Rounds {
            trainers,
            concurrent,
            requests_per_call: requests as f64 / runs as f64,
            plain_ms: median(plain),
            delayed_ms: median(delayed),
            latency,
        });
    }
    out
}
