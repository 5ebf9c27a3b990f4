//! Store round trips on the critical path. On a real object store every
//! request costs tens of milliseconds before its first byte, so end-to-end
//! time is about `rounds × latency + compute`; a loopback server hides it.
//!
//! One set of the four functions runs against the testkit S3 server (every
//! request held there), or against Redis through the testkit's fault proxy
//! (every chunk held half the latency each way); calls alternate between no
//! added latency and `latency` (so drift of the machine cancels out). The
//! difference of the two medians divided by the latency is the number of
//! store requests made one after another in a call: its round trips.

use std::time::Duration;

use stacking_testkit::fault_proxy::{Fault, FaultProxy};
use stacking_testkit::s3::S3Server;

/// The store whose latency the bench sets.
#[derive(Clone, Copy)]
pub(super) enum Delayed<'a> {
    S3(&'a S3Server),
    Redis(&'a FaultProxy),
}

impl Delayed<'_> {
    fn set_latency(self, latency: Duration) {
        match self {
            Self::S3(s3) => s3.set_latency(latency),
            Self::Redis(proxy) => proxy.set(if latency.is_zero() {
                Fault::None
            } else {
                Fault::Latency(latency / 2)
            }),
        }
    }

    /// Requests served so far, where the store counts them.
    fn requests(self) -> Option<usize> {
        match self {
            Self::S3(s3) => Some(s3.request_count()),
            Self::Redis(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::S3(_) => "S3",
            Self::Redis(_) => "Redis",
        }
    }
}

use super::harness::{launch, Caller, Workers};
use super::median;

/// One configuration's figures.
pub(super) struct Rounds {
    pub(super) store: &'static str,
    pub(super) trainers: usize,
    pub(super) concurrent: bool,
    pub(super) requests_per_call: Option<f64>,
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
        let requests = self
            .requests_per_call
            .map_or_else(|| "    -".to_string(), |r| format!("{r:>5.1}"));
        println!(
            "{:<5} {:>2} trainers {:<10} {requests} requests/call, {:>5.1} round trips at {:>3} ms (minimum {:>2}, goal <= {:>2} {verdict}); {:>6.1} ms at 0 ms, {:>7.1} ms at {} ms",
            self.store,
            self.trainers,
            if self.concurrent { "concurrent" } else { "sequential" },
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
    store: Delayed<'_>,
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
        let (mut plain, mut delayed, mut requests) = (Vec::new(), Vec::new(), Some(0));
        for _ in 0..runs {
            store.set_latency(Duration::ZERO);
            let before = store.requests();
            plain.push(caller.call_ms().await);
            requests = requests
                .zip(before.zip(store.requests()))
                .map(|(sum, (before, after))| sum + after - before);
            store.set_latency(latency);
            delayed.push(caller.call_ms().await);
        }
        store.set_latency(Duration::ZERO);
        out.push(Rounds {
            store: store.name(),
            trainers,
            concurrent,
            requests_per_call: requests.map(|r| r as f64 / runs as f64),
            plain_ms: median(plain),
            delayed_ms: median(delayed),
            latency,
        });
    }
    out
}
