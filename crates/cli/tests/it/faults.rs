//! Fault injection against the four functions as separate processes, with
//! a real S3-API server (the testkit's, over HTTP on loopback): a trainer
//! killed with SIGKILL or stopped with SIGTERM mid-run, with and without a
//! restart. Every process is started here and stopped by its PID. Each run
//! must end with the status the README promises and leave zero objects.

use std::process::Command;
use std::time::Duration;

use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::rpc::say_hello;
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};
use tonic::Code;

struct Cluster {
    s3: S3Server,
    ports: [u16; 4],
    env: Vec<(String, String)>,
    trainer: Proc,
    _others: Vec<Proc>,
}

fn stacking(env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stacking"));
    c.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    c
}

fn spawn_trainer(env: &[(String, String)], port: u16) -> Proc {
    Proc::spawn(stacking(env).args(["trainer", "-host", "127.0.0.1", &format!("-sp={port}")]))
        .expect("spawn trainer")
}

async fn serving(port: u16) {
    wait_serving(port, Duration::from_secs(20), Duration::from_millis(10))
        .await
        .expect("serving");
}

/// Four functions over S3; `trainers` Train calls per run.
async fn cluster(trainers: usize, concurrent: bool) -> Cluster {
    cluster_with(trainers, concurrent, None).await
}

/// [`cluster`], with the metatrainer replaced by whatever listens at
/// `metatrainer` (a port of this test's own), if given.
async fn cluster_with(trainers: usize, concurrent: bool, metatrainer: Option<u16>) -> Cluster {
    let s3 = S3Server::start().expect("S3 server");
    let mut ports = [(); 4].map(|_| free_port().expect("port"));
    if let Some(port) = metatrainer {
        ports[3] = port;
    }
    let env: Vec<(String, String)> = [
        ("TRANSFER_TYPE", "S3"),
        ("AWS_ENDPOINT_URL", s3.endpoint()),
        ("AWS_ACCESS_KEY", ACCESS),
        ("AWS_SECRET_KEY", SECRET),
        ("BUCKET_NAME", BUCKET),
        (
            "CONCURRENT_TRAINING",
            if concurrent { "true" } else { "false" },
        ),
        ("TrainersNum", &trainers.to_string()),
        ("DRAIN_TIMEOUT_S", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let sp = |i: usize| format!("-sp={}", ports[i]);
    let trainer = spawn_trainer(&env, ports[1]);
    let mut others = vec![
        Proc::spawn(stacking(&env).args(["reducer", "-host", "127.0.0.1", &sp(2)])).unwrap(),
        Proc::spawn(stacking(&env).args([
            "driver",
            "-host",
            "127.0.0.1",
            &sp(0),
            "-tAddr",
            &addr(1),
            "-rAddr",
            &addr(2),
            "-mAddr",
            &addr(3),
        ]))
        .unwrap(),
    ];
    if metatrainer.is_none() {
        others.push(
            Proc::spawn(stacking(&env).args(["metatrainer", "-host", "127.0.0.1", &sp(3)]))
                .unwrap(),
        );
    }
    for (i, port) in ports.into_iter().enumerate() {
        if i != 3 || metatrainer.is_none() {
            serving(port).await;
        }
    }
    Cluster {
        s3,
        ports,
        env,
        trainer,
        _others: others,
    }
}

impl Cluster {
    fn say_hello(&self) -> tokio::task::JoinHandle<Result<String, tonic::Status>> {
        let url = format!("http://127.0.0.1:{}", self.ports[0]);
        tokio::spawn(async move {
            let reply = say_hello(&url, "fault", Duration::from_secs(300)).await?;
            Ok(reply.message)
        })
    }

    /// Waits (bounded) for the bucket to be empty; the count left.
    async fn objects_after_cleanup(&self) -> usize {
        for _ in 0..500 {
            if self.s3.object_count() == 0 {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.s3.object_count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_killed_mid_run_and_restarted_does_not_fail_the_invocation() {
    let mut c = cluster(16, false).await;
    let call = c.say_hello();
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.trainer.sigkill().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.trainer = spawn_trainer(&c.env, c.ports[1]);
    let message = call
        .await
        .unwrap()
        .expect("the invocation survives the restart");
    assert!(message.contains("trainers=16"), "{message}");
    assert_eq!(c.objects_after_cleanup().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_killed_for_good_is_unavailable_and_leaves_no_objects() {
    // 32 sequential Trains: far longer than the 150 ms before the kill.
    let mut c = cluster(32, false).await;
    let call = c.say_hello();
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.trainer.sigkill().unwrap();
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("Train"), "{}", status.message());
    assert_eq!(c.objects_after_cleanup().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_stopped_by_sigterm_during_concurrent_trains_is_replaced_without_failing() {
    // A rolling update: SIGTERM, the old trainer drains and exits, a new one starts.
    let mut c = cluster(32, true).await;
    let call = c.say_hello();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let exit = c.trainer.sigterm(Duration::from_secs(15)).unwrap();
    assert!(exit.success(), "{exit:?}");
    c.trainer = spawn_trainer(&c.env, c.ports[1]);
    let message = call
        .await
        .unwrap()
        .expect("the invocation survives the update");
    assert!(message.contains("trainers=32"), "{message}");
    assert_eq!(c.objects_after_cleanup().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stopped_and_restarted_mid_run_leaves_no_objects() {
    let mut c = cluster(16, false).await;
    let call = c.say_hello();
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.s3.stop_serving();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.s3.restart().unwrap();
    // Storage calls are retried, and so are the Train calls they failed:
    // the run survives an outage this short, or reports UNAVAILABLE.
    match tokio::time::timeout(Duration::from_secs(60), call).await {
        Ok(Ok(Ok(message))) => {
            eprintln!("the run survived the outage: {message}");
            assert!(message.contains("trainers=16"), "{message}")
        }
        Ok(Ok(Err(status))) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        other => panic!("the run did not end within 60 s: {other:?}"),
    }
    assert_eq!(c.objects_after_cleanup().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_hello_cut_by_deadlines_leaves_no_objects() {
    let c = cluster(16, false).await;
    let url = format!("http://127.0.0.1:{}", c.ports[0]);
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut greeter = GreeterClient::new(channel);
    for ms in [50, 150, 300] {
        let mut req = tonic::Request::new(HelloRequest { name: "x".into() });
        req.set_timeout(Duration::from_millis(ms));
        if let Err(status) = greeter.say_hello(req).await {
            assert!(
                matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
                "{ms} ms: {status:?}"
            );
        }
    }
    assert_eq!(c.objects_after_cleanup().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_drain_bound_even_with_runaway_work() {
    let port = free_port().unwrap();
    let env: Vec<(String, String)> = vec![
        ("TRANSFER_TYPE".into(), "INLINE".into()),
        ("DRAIN_TIMEOUT_S".into(), "1".into()),
    ];
    let mut trainer = spawn_trainer(&env, port);
    serving(port).await;
    let ds = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 300,
        n_features: 256,
        ..Default::default()
    })
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let call = tokio::spawn(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        // No deadline: minutes of work unless something stops it.
        stacking_service::pb::stacking::trainer_client::TrainerClient::new(channel)
            .train(stacking_service::pb::stacking::TrainRequest {
                dataset: bytes::Bytes::from(ds.to_bytes()),
                model_config: bytes::Bytes::from_static(
                    br#"{"model":"LinearSVR","params":{"max_iter":1000000,"tol":1e-15,"C":1000}}"#,
                ),
                trainer_id: "0".into(),
                run_id: "run-00000000000000000000000000007e57".into(),
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // DRAIN_TIMEOUT_S=1, then the work is stopped: well within 10 s.
    let exit = trainer.sigterm(Duration::from_secs(10)).unwrap();
    assert!(exit.success(), "{exit:?}");
    let status = call.await.unwrap().unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Cancelled),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metatrainer_that_accepts_and_never_answers_is_unavailable_in_bounded_time() {
    let port = stacking_testkit::process::silent_peer()
        .await
        .unwrap()
        .port();
    let c = cluster_with(4, false, Some(port)).await;
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(60), c.say_hello())
        .await
        .expect("bounded")
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("Metatrain"),
        "{}",
        status.message()
    );
    eprintln!(
        "silent metatrainer: UNAVAILABLE after {:?}",
        started.elapsed()
    );
    assert_eq!(c.objects_after_cleanup().await, 0);
}
