//! What `grpcurl -plaintext HOST:PORT helloworld.Greeter.SayHello` does, with
//! no proto files: discover the method through server reflection (v1 and
//! v1alpha), build the request from the reflected descriptor, call it with a
//! raw-bytes codec. Plus the standard health service.

use crate::support;

use bytes::{Buf, BufMut};
use prost::Message;
use prost_types::FileDescriptorProto;
use support::*;
use tokio_stream::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn reflect_v1(ch: Channel, symbol: &str) -> (Vec<String>, Vec<FileDescriptorProto>) {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(ch);
    let reqs = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        },
    ];
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    let (mut services, mut files) = (Vec::new(), Vec::new());
    while let Some(resp) = stream.next().await {
        match resp.unwrap().message_response.unwrap() {
            MessageResponse::ListServicesResponse(l) => {
                services = l.service.into_iter().map(|s| s.name).collect()
            }
            MessageResponse::FileDescriptorResponse(f) => {
                files = f
                    .file_descriptor_proto
                    .iter()
                    .map(|b| FileDescriptorProto::decode(b.as_slice()).unwrap())
                    .collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (services, files)
}

async fn reflect_v1alpha(ch: Channel, symbol: &str) -> Vec<FileDescriptorProto> {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    let mut client = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    match stream
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
    {
        MessageResponse::FileDescriptorResponse(f) => f
            .file_descriptor_proto
            .iter()
            .map(|b| FileDescriptorProto::decode(b.as_slice()).unwrap())
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Passes message bytes through unchanged, as a dynamic client does.
#[derive(Default)]
struct RawCodec;
struct RawCoder;

impl Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;
    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }
    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

/// A length-delimited protobuf field (wire type 2).
fn string_field(number: i32, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(
        number as u32,
        prost::encoding::WireType::LengthDelimited,
        &mut out,
    );
    prost::encoding::encode_varint(value.len() as u64, &mut out);
    out.extend_from_slice(value.as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_hello_through_reflection_like_grpcurl() {
    let stack = start(StackOpts::default()).await;
    let ch = channel(stack.driver).await;
    let (services, files) = reflect_v1(ch.clone(), "helloworld.Greeter").await;
    for s in [
        "helloworld.Greeter",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.iter().any(|x| x == s), "{s} not in {services:?}");
    }
    let v1alpha = reflect_v1alpha(ch.clone(), "helloworld.Greeter").await;
    assert_eq!(v1alpha, files);

    // Resolve method, request and reply types from the descriptors alone.
    let file = files.iter().find(|f| f.package() == "helloworld").unwrap();
    let method = file
        .service
        .iter()
        .find(|s| s.name() == "Greeter")
        .unwrap()
        .method
        .iter()
        .find(|m| m.name() == "SayHello")
        .unwrap();
    assert_eq!(method.input_type(), ".helloworld.HelloRequest");
    let msg = |name: &str| {
        file.message_type
            .iter()
            .find(|m| m.name() == name)
            .unwrap()
            .clone()
    };
    let name_field = msg("HelloRequest")
        .field
        .iter()
        .find(|f| f.name() == "name")
        .unwrap()
        .number();
    let message_field = msg("HelloReply")
        .field
        .iter()
        .find(|f| f.name() == "message")
        .unwrap()
        .number();

    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHello");
    let reply = grpc
        .unary(
            tonic::Request::new(string_field(name_field, "grpcurl")),
            path,
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    // Find the `message` string in the reply bytes.
    let mut buf = reply.as_slice();
    let mut message = None;
    while buf.has_remaining() {
        let (tag, wire) = prost::encoding::decode_key(&mut buf).unwrap();
        let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
        assert_eq!(wire, prost::encoding::WireType::LengthDelimited);
        let value = String::from_utf8(buf[..len].to_vec()).unwrap();
        buf.advance(len);
        if tag as i32 == message_field {
            message = Some(value);
        }
    }
    let message = message.unwrap();
    assert!(
        message.starts_with("run=run-") && message.contains("trainers=4 auc="),
        "{message}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_serve_health() {
    let stack = start(StackOpts::default()).await;
    for (addr, service) in [
        (stack.driver, "helloworld.Greeter"),
        (stack.trainer, "stacking.Trainer"),
        (stack.reducer, "stacking.Reducer"),
        (stack.metatrainer, "stacking.Metatrainer"),
    ] {
        let mut health = HealthClient::new(channel(addr).await);
        for name in ["", service] {
            let status = health
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status();
            assert_eq!(status, ServingStatus::Serving, "{addr} {name:?}");
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_advertises_and_answers_only_its_own_service() {
    use stacking_service::pb::helloworld::greeter_client::GreeterClient;
    use stacking_service::pb::helloworld::HelloRequest;
    let stack = start(StackOpts::default()).await;
    let own = [
        (stack.driver, "driver", "helloworld.Greeter"),
        (stack.trainer, "trainer", "stacking.Trainer"),
        (stack.reducer, "reducer", "stacking.Reducer"),
        (stack.metatrainer, "metatrainer", "stacking.Metatrainer"),
    ];
    for (addr, role, service) in own {
        let (mut services, _) = reflect_v1(channel(addr).await, service).await;
        services.sort();
        let mut expected = vec![
            service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ];
        expected.sort();
        assert_eq!(services, expected, "{role}");
        if role != "driver" {
            let status = GreeterClient::new(channel(addr).await)
                .say_hello(HelloRequest { name: "x".into() })
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{role}");
            assert_eq!(
                status.message(),
                format!("this process is the {role} function: it serves {service} (plus health and reflection), not helloworld.Greeter")
            );
        }
    }
    stack.stop().await;
}
