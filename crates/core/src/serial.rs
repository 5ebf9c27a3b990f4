//! Versioned, self-describing serialisation of fitted models.
//!
//! Format (documented for Python readers in the README): a MessagePack map
//! `{"format": "stacking-model", "schema_version": 1, "kind": "level0" | "full",
//! "body": {...}}` whose body holds the model's spec (scikit-learn class name
//! and parameters) and its learned state as plain maps, lists and numbers.
//! Read it from Python with `msgpack.unpackb(data)`; nothing is executed on load
//! (the original benchmark used pickle, which runs code from the bytes).
//!
//! Decoding untrusted bytes: the size is capped first; `rmp-serde` caps
//! preallocation to what the input can hold and limits nesting depth; every
//! decoded model is then checked for internal consistency before use.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::models::FittedModel;
use crate::stack::FullModel;

pub const FORMAT: &str = "stacking-model";
pub const SCHEMA_VERSION: u32 = 1;
/// Largest encoded model accepted (a KNN model holds its training rows).
pub const MAX_MODEL_BYTES: usize = 1 << 30;

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("empty input: expected an encoded model")]
    Empty,
    #[error("encoded model is {0} bytes; the limit is {MAX_MODEL_BYTES}")]
    TooLarge(usize),
    #[error("not a stacking model: {0}")]
    Malformed(String),
    #[error("unsupported format {found:?} (expected {FORMAT:?})")]
    Format { found: String },
    #[error("schema version {found} is not supported (this build reads version {SCHEMA_VERSION})")]
    Version { found: u32 },
    #[error("expected a {expected} model, got a {found} model")]
    Kind {
        expected: &'static str,
        found: String,
    },
    #[error("model is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: String,
    schema_version: u32,
    kind: String,
    body: T,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    schema_version: u32,
    kind: String,
}

fn encode<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    let env = Envelope {
        format: FORMAT.to_string(),
        schema_version: SCHEMA_VERSION,
        kind: kind.to_string(),
        body,
    };
    // Serialising plain structs of numbers and strings into a Vec cannot fail.
    rmp_serde::to_vec_named(&env).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    kind: &'static str,
) -> Result<T, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let header: Header =
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if header.format != FORMAT {
        return Err(DecodeError::Format {
            found: header.format,
        });
    }
    if header.schema_version != SCHEMA_VERSION {
        return Err(DecodeError::Version {
            found: header.schema_version,
        });
    }
    if header.kind != kind {
        return Err(DecodeError::Kind {
            expected: kind,
            found: header.kind,
        });
    }
    let env: Envelope<T> =
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(env.body)
}

pub fn encode_model(model: &FittedModel) -> Vec<u8> {
    encode("level0", model)
}

pub fn decode_model(bytes: &[u8]) -> Result<FittedModel, DecodeError> {
    let m: FittedModel = decode(bytes, "level0")?;
    m.validate().map_err(DecodeError::Invalid)?;
    Ok(m)
}

/// A list of level-0 models (the reducer's output).
pub fn encode_models(models: &[FittedModel]) -> Vec<u8> {
    encode("level0-list", &models)
}

pub fn decode_models(bytes: &[u8]) -> Result<Vec<FittedModel>, DecodeError> {
    let models: Vec<FittedModel> = decode(bytes, "level0-list")?;
    for m in &models {
        m.validate().map_err(DecodeError::Invalid)?;
    }
    Ok(models)
}

pub fn encode_full(model: &FullModel) -> Vec<u8> {
    encode("full", model)
}

pub fn decode_full(bytes: &[u8]) -> Result<FullModel, DecodeError> {
    let m: FullModel = decode(bytes, "full")?;
    m.validate().map_err(DecodeError::Invalid)?;
    Ok(m)
}
