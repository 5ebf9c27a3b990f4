//! A driver whose dataset is still being made reports SERVING at once; a
//! SayHello that arrives first waits for the dataset and then succeeds. A
//! generator that ends without a dataset turns the driver NOT_SERVING, and
//! SayHello names the reason. A dataset still not made when the invocation's
//! deadline passes ends the call with DEADLINE_EXCEEDED.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use stacking_core::StackConfig;
use stacking_service::driver::{DatasetUnavailable, Driver, DriverConfig, LoadedDataset};
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::server::Role;
use stacking_service::settings::Limits;
use stacking_service::{Context, Route, RunPlan, Transfer};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

type Sender = tokio::sync::oneshot::Sender<Result<LoadedDataset, DatasetUnavailable>>;

/// A driver for the workers of `stack` whose dataset comes through the
/// returned sender; its address.
async fn pending_driver(
    stack: &stacking_service::local::LocalStack,
) -> (std::net::SocketAddr, Sender) {
    pending_driver_with(stack, Limits::default()).await
}

/// [`pending_driver`] with the driver's limits.
async fn pending_driver_with(
    stack: &stacking_service::local::LocalStack,
    limits: Limits,
) -> (std::net::SocketAddr, Sender) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let driver = Driver::new_pending(
        DriverConfig {
            trainer_addr: stack.trainer.to_string(),
            reducer_addr: stack.reducer.to_string(),
            metatrainer_addr: stack.metatrainer.to_string(),
            plan: RunPlan {
                trainers: 2,
                ..RunPlan::default()
            },
            stack: StackConfig::default(),
            report: Default::default(),
        },
        Context::new(Route::new(Transfer::Inline, None).unwrap(), 2, 1).with_limits(limits),
        rx,
    )
    .unwrap();
    let addr = support::serve_on_loopback(Role::Driver(Arc::new(driver))).await;
    (addr, tx)
}

async fn health(addr: std::net::SocketAddr) -> ServingStatus {
    let reply = HealthClient::new(support::channel(addr).await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(reply.status).unwrap()
}

fn say_hello(
    addr: std::net::SocketAddr,
) -> tokio::task::JoinHandle<
    Result<tonic::Response<stacking_service::pb::helloworld::HelloReply>, tonic::Status>,
> {
    tokio::spawn(async move {
        GreeterClient::new(support::channel(addr).await)
            .say_hello(HelloRequest {
                name: "early".into(),
            })
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_say_hello_before_the_dataset_is_made_waits_for_it() {
    let stack = support::start(support::StackOpts::default()).await;
    let (addr, tx) = pending_driver(&stack).await;
    assert_eq!(health(addr).await, ServingStatus::Serving);

    let call = say_hello(addr);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished(), "SayHello ran without a dataset");
    let bytes = support::dataset_bytes(60, 8);
    tx.send(Ok(LoadedDataset {
        bytes,
        n_samples: 60,
    }))
    .unwrap();
    let reply = support::within(Duration::from_secs(30), call)
        .await
        .unwrap()
        .expect("SayHello succeeds once the dataset is made");
    assert!(
        reply.get_ref().message.contains("trainers=2"),
        "{:?}",
        reply.get_ref().message
    );
    assert_eq!(health(addr).await, ServingStatus::Serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_that_ends_without_a_dataset_turns_the_driver_not_serving() {
    let stack = support::start(support::StackOpts::default()).await;
    let (addr, tx) = pending_driver(&stack).await;
    let call = say_hello(addr);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(tx);
    let status = support::within(Duration::from_secs(10), call)
        .await
        .unwrap()
        .expect_err("no dataset, no run");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("the driver has no dataset: the dataset generator stopped"),
        "{}",
        status.message()
    );
    let mut last = ServingStatus::Serving;
    for _ in 0..100 {
        last = health(addr).await;
        if last == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, ServingStatus::NotServing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_not_made_by_the_deadline_ends_the_call_with_deadline_exceeded() {
    let stack = support::start(support::StackOpts::default()).await;
    let (addr, _tx) = pending_driver_with(
        &stack,
        Limits {
            invocation_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let status = support::within(Duration::from_secs(10), say_hello(addr))
        .await
        .unwrap()
        .expect_err("no dataset by the deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("dataset"), "{}", status.message());
}
