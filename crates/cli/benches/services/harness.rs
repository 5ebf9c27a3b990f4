//! What the services bench measures: functions launched as processes (cold
//! start, idle RSS), SayHello through them, and one run's storage traffic
//! replayed straight against the store.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_core::Dataset;
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_storage::BlobStore;
use stacking_testkit::process::{free_port, wait_serving, Proc, RssByMapping};

use super::{compute_only, level0_encoded, median};

/// A function process we started, with its port; killed on drop.
pub(super) struct Function {
    pub(super) proc: Proc,
    pub(super) port: u16,
}

/// The binary the functions run: `STACKING_BIN` when set (the image's
/// static `dist` build, say, to measure what is shipped), else the one this
/// bench was built with.
pub(super) fn function_binary() -> std::path::PathBuf {
    std::env::var_os("STACKING_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_stacking")),
        std::path::PathBuf::from,
    )
}

/// Starts a role and returns it with its cold-start time (launch to healthy).
pub(super) async fn launch(
    role: &str,
    extra: &[String],
    env: &[(String, String)],
) -> (Function, f64) {
    let port = free_port().expect("free port");
    let t = Instant::now();
    let proc = Proc::spawn(
        Command::new(function_binary())
            .arg(role)
            .args(["-host", "127.0.0.1", &format!("-sp={port}")])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "warn"),
    )
    .expect("spawn stacking");
    wait_serving(port, Duration::from_secs(20), Duration::from_micros(500))
        .await
        .expect("function never became healthy");
    (Function { proc, port }, t.elapsed().as_secs_f64() * 1e3)
}

/// One 4-trainer run's storage traffic, replayed straight against `store`
/// with the same object sizes, order and parallelism as the functions use.
pub(super) async fn storage_replay_ms(store: &dyn BlobStore, data: &Bytes, trainers: usize) -> f64 {
    let ds = Dataset::from_bytes(data).expect("dataset");
    let (models, preds) = level0_encoded(data, trainers);
    let models_list: usize = models.iter().map(Bytes::len).sum();
    let list = Bytes::from(vec![7u8; models_list]);
    let meta = Bytes::from(vec![7u8; ds.n_samples() * trainers * 8 + 128]);
    let full = Bytes::from(vec![7u8; models_list + 4096]);
    let meta_preds = preds[0].clone();
    let labels_offset = ds.x_npy().len() as u64;
    let k = |name: &str| format!("replay/{name}");
    let t = Instant::now();
    store
        .put("replay/dataset", data.clone())
        .await
        .expect("put");
    for i in 0..trainers {
        store.get("replay/dataset").await.expect("get");
        let (m, p) = (k(&format!("model_{i}")), k(&format!("pred_{i}")));
        tokio::try_join!(
            store.put(&m, models[i].clone()),
            store.put(&p, preds[i].clone())
        )
        .expect("put");
    }
    let gets = (0..trainers).flat_map(|i| [k(&format!("model_{i}")), k(&format!("pred_{i}"))]);
    futures::future::try_join_all(gets.map(|key| async move { store.get(&key).await }))
        .await
        .expect("get");
    tokio::try_join!(
        store.put("replay/models", list),
        store.put("replay/meta", meta)
    )
    .expect("put");
    let labels = async {
        store.get_range("replay/dataset", 0..4096).await?;
        store
            .get_range("replay/dataset", labels_offset..labels_offset + 8192)
            .await
    };
    tokio::try_join!(labels, store.get("replay/models"), store.get("replay/meta")).expect("get");
    tokio::try_join!(
        store.put("replay/model_full", full),
        store.put("replay/meta_predictions", meta_preds)
    )
    .expect("put");
    tokio::try_join!(
        store.get("replay/model_full"),
        store.get("replay/meta_predictions")
    )
    .expect("get");
    let keys = store.list("replay/").await.expect("list");
    store.delete_many(&keys).await.expect("delete");
    t.elapsed().as_secs_f64() * 1e3
}

/// A connection to a driver, for timed SayHello calls.
pub(super) struct Caller(pub(super) GreeterClient<tonic::transport::Channel>);

impl Caller {
    pub(super) async fn connect(port: u16) -> Self {
        let mut c = Self::connect_cold(port).await;
        c.call_ms().await; // warm-up: connections downstream, first-call allocations
        c
    }

    /// A connection without the warm-up call.
    async fn connect_cold(port: u16) -> Self {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect driver");
        Self(GreeterClient::new(ch).max_decoding_message_size(256 << 20))
    }

    pub(super) async fn call_ms(&mut self) -> f64 {
        let t = Instant::now();
        self.0
            .say_hello(HelloRequest {
                name: "bench".into(),
            })
            .await
            .expect("SayHello");
        t.elapsed().as_secs_f64() * 1e3
    }
}

/// Median SayHello time of the driver at `port`.
pub(super) async fn say_hello_ms(port: u16, runs: usize) -> f64 {
    let mut c = Caller::connect(port).await;
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(c.call_ms().await);
    }
    median(v)
}

/// A 4-trainer configuration measured against the compute of its steps:
/// each SayHello is followed by one in-process run of the same compute, so
/// both see the same machine state.
pub(super) struct Paired {
    /// Median SayHello, ms.
    pub(super) end_to_end: f64,
    /// Median of (SayHello - the compute run next to it), ms.
    pub(super) overhead: f64,
    /// Median in-process compute, ms.
    pub(super) compute: f64,
}

pub(super) async fn paired(port: u16, data: &Bytes, runs: usize) -> Paired {
    let mut c = Caller::connect(port).await;
    let (mut e2e, mut over, mut comp) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let e = c.call_ms().await;
        let k = tokio::task::block_in_place(|| compute_only(data, 4));
        e2e.push(e);
        comp.push(k);
        over.push(e - k);
    }
    Paired {
        end_to_end: median(e2e),
        overhead: median(over),
        compute: median(comp),
    }
}

/// The three worker processes of one configuration.
pub(super) struct Workers {
    pub(super) trainer: Function,
    pub(super) reducer: Function,
    pub(super) metatrainer: Function,
}

impl Workers {
    pub(super) async fn launch(env: &[(String, String)]) -> Self {
        Self {
            trainer: launch("trainer", &[], env).await.0,
            reducer: launch("reducer", &[], env).await.0,
            metatrainer: launch("metatrainer", &[], env).await.0,
        }
    }

    pub(super) fn driver_args(&self, n: usize) -> Vec<String> {
        addr_args(&self.trainer, &self.reducer, &self.metatrainer, n)
    }

    pub(super) fn roles(&self) -> [(&'static str, &Function); 3] {
        [
            ("trainer", &self.trainer),
            ("reducer", &self.reducer),
            ("metatrainer", &self.metatrainer),
        ]
    }
}

/// One transfer configuration, 4 sequential and 16 concurrent.
pub(super) struct Measured {
    pub(super) four: Paired,
    pub(super) sixteen: f64,
    /// Peak RSS per role after the 16-concurrent calls, MiB.
    pub(super) peak: Vec<(&'static str, f64)>,
}

pub(super) async fn measure(env: &[(String, String)], data: &Bytes, runs: usize) -> Measured {
    let workers = Workers::launch(env).await;
    let (driver, _) = launch("driver", &workers.driver_args(4), env).await;
    let four = paired(driver.port, data, runs).await;
    drop(driver);
    let mut env16 = env.to_vec();
    env16.push(("CONCURRENT_TRAINING".into(), "true".into()));
    let (driver, _) = launch("driver", &workers.driver_args(16), &env16).await;
    let sixteen = say_hello_ms(driver.port, runs.div_ceil(2)).await;
    let mut peak = vec![("driver", driver.proc.peak_rss_mib())];
    peak.extend(workers.roles().map(|(n, f)| (n, f.proc.peak_rss_mib())));
    Measured {
        four,
        sixteen,
        peak,
    }
}

/// What a cold start costs each role.
pub(super) struct ColdStart {
    pub(super) role: &'static str,
    /// Launch to healthy, median of 5 launches, ms.
    pub(super) healthy_ms: f64,
    /// Driver only: how much longer its first SayHello, sent the moment it
    /// is healthy, takes than the next ones (median of 4 launches), ms. The
    /// driver reports SERVING while it still makes its dataset, so this
    /// shows what that wait moved into the first call.
    pub(super) first_call_extra_ms: Option<f64>,
}

/// Cold start of every role.
pub(super) async fn cold_starts(env: &[(String, String)]) -> Vec<ColdStart> {
    let workers = Workers::launch(env).await;
    let mut out = Vec::new();
    for role in ["trainer", "reducer", "metatrainer", "driver"] {
        let extra = if role == "driver" {
            workers.driver_args(4)
        } else {
            Vec::new()
        };
        let mut times = Vec::new();
        let mut first_extra = Vec::new();
        for launches in 1..=5 {
            let (f, ms) = launch(role, &extra, env).await;
            times.push(ms);
            if role == "driver" && launches < 5 {
                first_extra.push(first_call_extra_ms(f.port).await);
            }
        }
        out.push(ColdStart {
            role,
            healthy_ms: median(times),
            first_call_extra_ms: (!first_extra.is_empty()).then(|| median(first_extra)),
        });
    }
    out
}

/// What one idle function holds.
pub(super) struct Idle {
    pub(super) role: &'static str,
    /// Resident set, MiB: every resident page, shared ones included.
    pub(super) rss_mib: f64,
    /// Proportional set, MiB: shared pages split between the processes
    /// mapping them (here the four functions of one binary file).
    pub(super) pss_mib: f64,
    /// The resident set by mapping.
    pub(super) by_mapping: Option<RssByMapping>,
}

/// The four functions started from one binary file, as pods of one image
/// on a node are, and nothing else of that binary running: each one's RSS
/// and PSS 200 ms after the driver is healthy (at rest: after what start-up
/// hands back, the driver's generator scratch among it, and before any
/// call).
pub(super) async fn idle_four(env: &[(String, String)]) -> Vec<Idle> {
    let workers = Workers::launch(env).await;
    let (driver, _) = launch("driver", &workers.driver_args(4), env).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut functions: Vec<(&'static str, &Function)> = workers.roles().into_iter().collect();
    functions.push(("driver", &driver));
    functions
        .into_iter()
        .map(|(role, f)| Idle {
            role,
            rss_mib: f.proc.rss_mib(),
            pss_mib: f.proc.pss_mib(),
            by_mapping: f.proc.rss_by_mapping(),
        })
        .collect()
}

/// The first SayHello to a driver that has just become healthy, minus the
/// median of the three after it, ms.
async fn first_call_extra_ms(port: u16) -> f64 {
    let mut c = Caller::connect_cold(port).await;
    let first = c.call_ms().await;
    let mut next = Vec::new();
    for _ in 0..3 {
        next.push(c.call_ms().await);
    }
    first - median(next)
}

/// The driver's flags pointing at the three worker processes.
pub(super) fn addr_args(
    trainer: &Function,
    reducer: &Function,
    metatrainer: &Function,
    n: usize,
) -> Vec<String> {
    vec![
        "-tAddr".to_string(),
        format!("127.0.0.1:{}", trainer.port),
        "-rAddr".into(),
        format!("127.0.0.1:{}", reducer.port),
        "-mAddr".into(),
        format!("127.0.0.1:{}", metatrainer.port),
        "-trainersNum".into(),
        n.to_string(),
    ]
}
