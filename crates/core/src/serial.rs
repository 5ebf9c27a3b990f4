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

use std::borrow::Borrow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::models::{FittedModel, InvalidModel};
use crate::stack::FullModel;

pub mod budget;

/// The `format` every encoded model carries.
pub const FORMAT: &str = "stacking-model";
/// Version 2 stores repeated level-0 models once in lists and full models.
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest version this build still reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;
/// Largest encoded model accepted (a KNN model holds its training rows).
pub const MAX_MODEL_BYTES: usize = 1 << 30;
/// The most level-0 models a model list or full model may hold.
pub const MAX_LIST_MODELS: usize = 65_536;

/// Why bytes did not decode to a model.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty input: expected an encoded model")]
    Empty,
    /// More bytes than any model may have.
    #[error("encoded model is {0} bytes; the limit is {MAX_MODEL_BYTES}")]
    TooLarge(usize),
    /// Not MessagePack of a stacking model (the decoder's message).
    #[error("not a stacking model: {0}")]
    Malformed(String),
    /// Another format's bytes.
    #[error("unsupported format {found:?} (expected {FORMAT:?})")]
    Format {
        /// The format found.
        found: String,
    },
    /// A schema version this build does not read.
    #[error("schema version {found} is not supported (this build reads versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Another kind of model (a list where one model was expected, ...).
    #[error("expected a {expected} model, got a {found} model")]
    Kind {
        /// The kind expected.
        expected: &'static str,
        /// The kind found.
        found: String,
    },
    /// A model that decodes but is not consistent.
    #[error("model is inconsistent: {0}")]
    Invalid(#[from] InvalidModel),
}

/// A model that could not be written (serialising plain structs of numbers
/// and strings does not fail, but the error is passed on, never turned into
/// an empty buffer).
#[derive(Debug, Error)]
#[error("could not encode the model: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

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

fn encode<T: Serialize>(kind: &str, body: &T) -> Result<Vec<u8>, EncodeError> {
    let env = Envelope {
        format: FORMAT.to_string(),
        schema_version: SCHEMA_VERSION,
        kind: kind.to_string(),
        body,
    };
    Ok(rmp_serde::to_vec_named(&env)?)
}

/// Checks the envelope (size, format, version, kind) and returns its schema version.
fn check_envelope(bytes: &[u8], kind: &'static str) -> Result<u32, DecodeError> {
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
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&header.schema_version) {
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
    Ok(header.schema_version)
}

/// The body of an envelope already checked by [`check_envelope`], decoded
/// within the memory budget of [`budget`].
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let env: Envelope<T> = budget::with_budget(bytes.len(), || rmp_serde::from_slice(bytes))
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(env.body)
}

/// One level-0 model (a trainer's output).
pub fn encode_model(model: &FittedModel) -> Result<Vec<u8>, EncodeError> {
    encode("level0", model)
}

/// One level-0 model, checked for consistency.
pub fn decode_model(bytes: &[u8]) -> Result<FittedModel, DecodeError> {
    // A level-0 body is the same in every version.
    check_envelope(bytes, "level0")?;
    let m: FittedModel = body(bytes)?;
    m.validate()?;
    Ok(m)
}

/// Level-0 models as stored in a list (schema version 2): each distinct
/// model once, and `order[i]` the index in `unique` of the i-th model.
/// Trainers that share a configuration fit equal models; with 16 trainers
/// over the 4 default models this stores the 2.4 MiB KNN model once instead
/// of four times.
#[derive(Serialize)]
struct SharedListOut<'a> {
    unique: Vec<&'a FittedModel>,
    order: Vec<usize>,
}

#[derive(Deserialize)]
struct SharedListIn {
    #[serde(deserialize_with = "budget::vec")]
    unique: Vec<FittedModel>,
    #[serde(deserialize_with = "budget::vec")]
    order: Vec<usize>,
}

fn share<'a, M: Borrow<FittedModel>>(models: &'a [M]) -> SharedListOut<'a> {
    let mut unique: Vec<&'a FittedModel> = Vec::new();
    let order = models
        .iter()
        .map(|m| {
            let m = m.borrow();
            match unique.iter().position(|u| std::ptr::eq(*u, m) || *u == m) {
                Some(i) => i,
                None => {
                    unique.push(m);
                    unique.len() - 1
                }
            }
        })
        .collect();
    SharedListOut { unique, order }
}

impl SharedListIn {
    /// A version-1 list: every model written out, in order.
    fn in_order(models: Vec<FittedModel>) -> Self {
        let order = (0..models.len()).collect();
        Self {
            unique: models,
            order,
        }
    }

    /// Checks every model and expands `order`, sharing (not copying) repeats.
    fn expand(self) -> Result<Vec<Arc<FittedModel>>, DecodeError> {
        if self.order.len() > MAX_LIST_MODELS {
            return Err(InvalidModel::ListTooLong {
                len: self.order.len(),
                limit: MAX_LIST_MODELS,
            }
            .into());
        }
        let unique: Vec<Arc<FittedModel>> = self.unique.into_iter().map(Arc::new).collect();
        for m in &unique {
            m.validate()?;
        }
        let mut used = vec![false; unique.len()];
        let models = self
            .order
            .iter()
            .map(|&i| {
                let m = unique.get(i).ok_or_else(|| {
                    DecodeError::from(InvalidModel::ListIndex {
                        index: i,
                        len: unique.len(),
                    })
                })?;
                used[i] = true;
                Ok(Arc::clone(m))
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(InvalidModel::ListUnused(i).into());
        }
        Ok(models)
    }
}

/// A version-1 model list: every model written out.
#[derive(Deserialize)]
#[serde(transparent)]
struct V1List(#[serde(deserialize_with = "budget::vec")] Vec<FittedModel>);

/// A list of level-0 models (the reducer's output).
pub fn encode_models<M: Borrow<FittedModel>>(models: &[M]) -> Result<Vec<u8>, EncodeError> {
    encode("level0-list", &share(models))
}

/// A list of level-0 models, each checked and repeats shared.
pub fn decode_models(bytes: &[u8]) -> Result<Vec<Arc<FittedModel>>, DecodeError> {
    let list = match check_envelope(bytes, "level0-list")? {
        1 => SharedListIn::in_order(body::<V1List>(bytes)?.0),
        _ => body(bytes)?,
    };
    list.expand()
}

#[derive(Serialize)]
struct FullOut<'a> {
    level0: SharedListOut<'a>,
    meta: &'a FittedModel,
}

#[derive(Deserialize)]
struct FullIn {
    level0: SharedListIn,
    meta: FittedModel,
}

/// Schema version 1 wrote every level-0 model in full.
#[derive(Deserialize)]
struct FullInV1 {
    #[serde(deserialize_with = "budget::vec")]
    level0: Vec<FittedModel>,
    meta: FittedModel,
}

/// The full two-layer model (the metatrainer's output).
pub fn encode_full(model: &FullModel) -> Result<Vec<u8>, EncodeError> {
    encode(
        "full",
        &FullOut {
            level0: share(&model.level0),
            meta: &model.meta,
        },
    )
}

/// The full two-layer model, checked for consistency.
pub fn decode_full(bytes: &[u8]) -> Result<FullModel, DecodeError> {
    let full: FullIn = match check_envelope(bytes, "full")? {
        1 => {
            let v1: FullInV1 = body(bytes)?;
            FullIn {
                level0: SharedListIn::in_order(v1.level0),
                meta: v1.meta,
            }
        }
        _ => body(bytes)?,
    };
    let m = FullModel {
        level0: full.level0.expand()?,
        meta: full.meta,
    };
    m.validate()?;
    Ok(m)
}
