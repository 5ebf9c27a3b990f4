//! The protobuf codec of every service and client here: prost's, except
//! that a message that does not decode is the caller's mistake,
//! `INVALID_ARGUMENT` naming the problem, not `INTERNAL` (tonic-prost's
//! default), and that encoding reserves the message's whole length first.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// The longest decode error repeated to the caller.
const MAX_DETAIL: usize = 200;

/// prost's encoding into a buffer that first reserves the message's whole
/// length. prost writes field by field, and the buffer grew by doubling: a
/// driver's inline `ReduceRequest` with 16 trainers' models (10 MiB) took
/// 20 MiB of buffers, copied at each step (heaptrack: its largest peak
/// consumer), and the freed steps fragmented the heap.
#[derive(Debug, Clone)]
pub struct ReservingEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ReservingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }
}

/// tonic's protobuf codec, with decoding errors answered `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ReservingEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ReservingEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

/// The decoder of [`StrictCodec`].
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            let detail = stacking_core::params::excerpt(&e.to_string(), MAX_DETAIL);
            Status::invalid_argument(format!(
                "the request is not a valid protobuf message: {detail}"
            ))
        })
    }
}
