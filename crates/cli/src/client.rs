//! `stacking client -addr host:port [NAME]`: vSwarm's one-shot test client.
//! One call, its reply and its time. SayHello by default (to a driver);
//! `-method train` sends one Train of the default dataset and model to a
//! trainer, `-method health` asks the health service.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::StackConfig;
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::TrainRequest;
use stacking_service::rpc::{with_deadline, CALLER_GRACE};
use tonic::transport::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// helloworld.Greeter/SayHello: one whole run on a driver.
    SayHello,
    /// stacking.Trainer/Train: the default dataset, trainer 0's model, inline.
    Train,
    /// grpc.health.v1.Health/Check on any function.
    Health,
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    #[arg(long = "addr")]
    pub addr: String,
    #[arg(long = "method", value_enum)]
    pub method: Method,
    #[arg(long = "timeout")]
    pub timeout: f64,
    pub name: String,
}

pub async fn call(args: ClientArgs) -> Result<()> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        anyhow::bail!("-timeout must be a positive number of seconds");
    }
    // The deadline travels with the call (grpc-timeout), so the function
    // stops when this client stops waiting.
    let deadline = Duration::from_secs_f64(args.timeout);
    let channel = Endpoint::from_shared(stacking_service::rpc::peer_uri(&args.addr))
        .with_context(|| format!("-addr {:?} is not host:port or a URL", args.addr))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(deadline + CALLER_GRACE)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))?;
    let failed = |s: tonic::Status| {
        anyhow::anyhow!("{} answered {:?}: {}", args.addr, s.code(), s.message())
    };
    let start = Instant::now();
    match args.method {
        Method::SayHello => {
            let reply = GreeterClient::new(channel)
                .max_decoding_message_size(256 << 20)
                .say_hello(with_deadline(HelloRequest { name: args.name }, deadline))
                .await
                .map_err(failed)?
                .into_inner();
            println!("Greeting: {}", reply.message);
        }
        Method::Train => {
            let dataset = make_classification(&GeneratorParams::default())?;
            let stack = StackConfig::default();
            let spec = stack.model_for_trainer(0);
            let reply = TrainerClient::new(channel)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20)
                .train(with_deadline(
                    TrainRequest {
                        dataset: Bytes::from(dataset.to_bytes()),
                        model_config: Bytes::from(spec.to_json().to_string()),
                        trainer_id: "0".into(),
                        ..Default::default()
                    },
                    deadline,
                ))
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "Trained {}: out-of-fold AUC {:.6}, model {} bytes",
                reply.model_name,
                reply.oof_auc,
                reply.model.len()
            );
        }
        Method::Health => {
            use tonic_health::pb::health_client::HealthClient;
            let status = HealthClient::new(channel)
                .check(with_deadline(
                    tonic_health::pb::HealthCheckRequest::default(),
                    deadline,
                ))
                .await
                .map_err(failed)?
                .into_inner()
                .status();
            println!("Health: {}", status.as_str_name());
        }
    }
    println!("time: {:.3} ms", start.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
