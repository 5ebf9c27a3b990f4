//! Reading one model's hyper-parameters off its JSON `params` object.
//!
//! Each model module owns its parameters: the names it knows, its defaults
//! (once, as a `DEFAULT` constant), and the bounds of every value that scales
//! work or memory. They all read through `ParamReader`, which refuses
//! unknown names, wrong types and values out of bounds with a
//! [`ConfigError`] that names the parameter, and never echoes more than a
//! short excerpt of the input.

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a configuration was refused. Every variant names the offending item;
/// values taken from the input are cut to [`ECHO_LIMIT`] characters.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// The bytes are not JSON (the parser's message).
    #[error("model config is not valid JSON: {0}")]
    Json(String),
    /// The JSON is not an object (an excerpt of it).
    #[error("model config must be a JSON object like {{\"model\": \"Lasso\", \"params\": {{...}}}}, got {0}")]
    NotAnObject(String),
    /// The object has no `"model"` key.
    #[error("model config has no \"model\" name")]
    MissingModel,
    /// A model name this build does not implement.
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel {
        /// The name given (an excerpt).
        name: String,
        /// The names this build implements.
        known: String,
    },
    /// A key other than `"model"` and `"params"`.
    #[error("unknown key {key:?} in model config; allowed keys: \"model\", \"params\"")]
    UnknownKey {
        /// The key (an excerpt).
        key: String,
    },
    /// A parameter the model does not have.
    #[error("{model}: unknown parameter {param:?}; known parameters: {known}")]
    UnknownParam {
        /// The model.
        model: &'static str,
        /// The parameter as given (an excerpt).
        param: String,
        /// The parameters the model knows.
        known: String,
    },
    /// A parameter of the wrong JSON type.
    #[error("{model}: parameter {param:?} must be {expected}, got {found}")]
    WrongType {
        /// The model.
        model: &'static str,
        /// The parameter.
        param: &'static str,
        /// The type expected.
        expected: &'static str,
        /// The value given (an excerpt).
        found: String,
    },
    /// A parameter outside its accepted range.
    #[error("{model}: parameter {param:?} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The model.
        model: &'static str,
        /// The parameter.
        param: &'static str,
        /// The value given (an excerpt).
        value: String,
        /// The range accepted.
        expected: &'static str,
    },
    /// A stack-config key other than `"models"` and `"meta_model"`.
    #[error("stack config: unknown key {key:?}; allowed keys: \"models\", \"meta_model\"")]
    UnknownStackKey {
        /// The key (an excerpt).
        key: String,
    },
    /// `"models"` is not a non-empty list.
    #[error("stack config: \"models\" must be a non-empty list, got {found}")]
    ModelsNotAList {
        /// What was given (an excerpt).
        found: String,
    },
    /// A model given a role it cannot play.
    #[error("stack config: {0}")]
    Role(#[from] crate::models::RoleError),
    /// An object that names one key twice (JSON parsers disagree on which
    /// one wins, so neither is taken).
    #[error("key {key:?} is given twice in one object")]
    DuplicateKey {
        /// The key (an excerpt).
        key: String,
    },
}

/// Parses JSON configuration bytes, refusing an object that names a key
/// twice at any depth: `{"model": "Lasso", "model": "LinearSVR"}` would
/// otherwise silently train the last one.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde::Deserialize::deserialize(&mut de)
        .and_then(|StrictValue(v)| de.end().map(|()| v))
        .map_err(|e| {
            let text = e.to_string();
            match text.strip_prefix(DUPLICATE) {
                Some(rest) => ConfigError::DuplicateKey {
                    key: rest.split(" at line").next().unwrap_or(rest).to_string(),
                },
                None => ConfigError::Json(excerpt(&text, 200)),
            }
        })?;
    Ok(value)
}

/// The start of the error a duplicate key raises inside the parser.
const DUPLICATE: &str = "duplicate key: ";

/// A JSON value whose objects have no repeated keys.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|StrictValue(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "{DUPLICATE}{}",
                    excerpt(&key, ECHO_LIMIT)
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The most characters of an input value an error message repeats.
pub const ECHO_LIMIT: usize = 60;

/// `s` cut to `limit` characters, marked with `...` when cut.
pub fn excerpt(s: &str, limit: usize) -> String {
    match s.char_indices().nth(limit.saturating_sub(3)) {
        Some((cut, _)) if s.chars().nth(limit).is_some() => format!("{}...", &s[..cut]),
        _ => s.to_string(),
    }
}

/// `s` with every control character written as an escape (`\n`,
/// `\u{1b}`): a message or log line that repeats input can then never
/// break a line or carry a terminal sequence.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How any input is repeated in a status message or a log line: cut to
/// `limit` characters first (so a 50 MB input costs nothing), then its
/// control characters escaped. Values inside messages use [`ECHO_LIMIT`],
/// keys and ids 200, whole messages 1024.
pub fn printable(s: &str, limit: usize) -> String {
    escape_controls(&excerpt(s, limit))
}

/// A JSON value as a short excerpt for an error message.
pub fn short(v: &Value) -> String {
    match v {
        // A long string would otherwise be serialised whole first.
        Value::String(s) => format!("{:?}", excerpt(s, ECHO_LIMIT)),
        // Debug prints floats in their shortest form, exponent included
        // (1e-300, not 300 digits of "0.000...").
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map_or_else(|| n.to_string(), |f| format!("{f:?}")),
        Value::Array(a) if a.len() > ECHO_LIMIT => format!("[{} items]", a.len()),
        Value::Object(o) if o.len() > ECHO_LIMIT => format!("{{{} keys}}", o.len()),
        other => excerpt(&other.to_string(), ECHO_LIMIT),
    }
}

/// Reads one model's parameters off its JSON `params` object, checking
/// each: the model's [`crate::models::Model::parse`] takes values through
/// it. Unknown names, wrong types and values out of range are
/// [`ConfigError`]s naming the parameter; input is repeated only as a short
/// excerpt.
#[derive(Debug)]
pub struct ParamReader<'a> {
    model: &'static str,
    params: &'a Map<String, Value>,
    known: &'static [&'static str],
}

/// An integer parameter's accepted range and its wording in errors.
#[derive(Debug, Clone, Copy)]
pub struct IntRange {
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// How an error states the range.
    pub expected: &'static str,
}

impl<'a> ParamReader<'a> {
    /// A reader of `params` for `model`, refusing any name not in `known`.
    pub fn new(
        model: &'static str,
        params: &'a Map<String, Value>,
        known: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        if let Some(param) = params.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConfigError::UnknownParam {
                model,
                param: excerpt(param, ECHO_LIMIT),
                known: known.join(", "),
            });
        }
        Ok(Self {
            model,
            params,
            known,
        })
    }

    /// The raw value of `name`, if given and not null.
    pub fn get(&self, name: &'static str) -> Option<&'a Value> {
        debug_assert!(self.known.contains(&name));
        self.params.get(name).filter(|v| !v.is_null())
    }

    /// The error for `v` given as `param`, which must be `expected`.
    pub fn wrong(&self, param: &'static str, expected: &'static str, v: &Value) -> ConfigError {
        ConfigError::WrongType {
            model: self.model,
            param,
            expected,
            found: short(v),
        }
    }

    /// The error for `value` of `param` outside `expected`.
    pub fn range(&self, param: &'static str, value: String, expected: &'static str) -> ConfigError {
        ConfigError::OutOfRange {
            model: self.model,
            param,
            value: printable(&value, ECHO_LIMIT),
            expected,
        }
    }

    /// A finite number accepted by `ok`, or `default` when absent.
    pub fn float(
        &self,
        name: &'static str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        expected: &'static str,
    ) -> Result<f64, ConfigError> {
        let v = match self.get(name) {
            None => return Ok(default),
            Some(v) => v,
        };
        let x = v.as_f64().ok_or_else(|| self.wrong(name, "a number", v))?;
        if !x.is_finite() || !ok(x) {
            // Debug, not Display: 1e-300 rather than 300 digits of "0.000...".
            return Err(self.range(name, format!("{x:?}"), expected));
        }
        Ok(x)
    }

    /// A whole number in `range` (written as an integer or an integral float),
    /// or `default` when absent.
    pub fn int(
        &self,
        name: &'static str,
        default: u64,
        range: IntRange,
    ) -> Result<u64, ConfigError> {
        let v = match self.get(name) {
            None => return Ok(default),
            Some(v) => v,
        };
        let x = match (v.as_u64(), v.as_f64()) {
            (Some(x), _) => x,
            (None, Some(f)) if f.fract() != 0.0 || !f.is_finite() => {
                return Err(self.wrong(name, "an integer", v))
            }
            (None, Some(f)) if f < 0.0 || f > u64::MAX as f64 => {
                return Err(self.range(name, short(v), range.expected))
            }
            (None, Some(f)) => f as u64,
            (None, None) => return Err(self.wrong(name, "an integer", v)),
        };
        if x < range.min || x > range.max {
            return Err(self.range(name, x.to_string(), range.expected));
        }
        Ok(x)
    }

    /// [`ParamReader::int`] as a `usize` (every bound fits one).
    pub fn count(
        &self,
        name: &'static str,
        default: usize,
        range: IntRange,
    ) -> Result<usize, ConfigError> {
        let x = self.int(name, default as u64, range)?;
        usize::try_from(x).map_err(|_| self.range(name, x.to_string(), range.expected))
    }

    /// [`ParamReader::count`], or `None` when absent or null.
    pub fn opt_count(
        &self,
        name: &'static str,
        range: IntRange,
    ) -> Result<Option<usize>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.count(name, 0, range).map(Some),
        }
    }

    /// A boolean, or `default` when absent.
    pub fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.wrong(name, "true or false", v)),
        }
    }

    /// `name` must be absent or `false`: `why` says what is not implemented.
    pub fn must_be_false(&self, name: &'static str, why: &'static str) -> Result<(), ConfigError> {
        if self.bool(name, false)? {
            return Err(self.range(name, "true".into(), why));
        }
        Ok(())
    }

    /// One of `allowed`, or `default` when absent.
    pub fn choice(
        &self,
        name: &'static str,
        default: &'static str,
        allowed: &'static [&'static str],
        expected: &'static str,
    ) -> Result<&'a str, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.as_str()),
            Some(v @ Value::String(_)) => Err(self.range(name, short(v), expected)),
            Some(v) => Err(self.wrong(name, "a string", v)),
        }
    }

    /// `random_state`: an integer seed in 0..2^32, or null (seed 0, so runs stay reproducible).
    pub fn seed(&self) -> Result<u32, ConfigError> {
        const SEED: IntRange = IntRange {
            min: 0,
            max: u32::MAX as u64,
            expected: "an integer in 0..4294967295",
        };
        Ok(self.int("random_state", 0, SEED)? as u32)
    }

    /// Parameters that only steer scikit-learn's logging or copying: accepted and ignored.
    pub fn ignored(&self, _names: &[&'static str]) {}
}

/// Accepts values above zero.
pub fn positive(x: f64) -> bool {
    x > 0.0
}

/// Accepts zero and above.
pub fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// The smallest `tol` any solver accepts. Below it the stopping quantities
/// are under the rounding of their own sums (relative 1e-16), so a smaller
/// value only makes a solver spin to `max_iter`.
pub const MIN_TOL: f64 = 1e-15;

/// `tol` for a solver: at least [`MIN_TOL`].
pub fn tolerance(x: f64) -> bool {
    x >= MIN_TOL
}

/// Iterations (epochs) a coordinate-descent solver may be asked for.
pub const MAX_SOLVER_ITER: u64 = 1_000_000;

/// `max_iter` of every iterative solver: 1 to [`MAX_SOLVER_ITER`].
pub const SOLVER_ITER: IntRange = IntRange {
    min: 1,
    max: MAX_SOLVER_ITER,
    expected: "an integer in 1..=1000000",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_long_text_on_a_character_boundary() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("0123456789", 10), "0123456789");
        assert_eq!(excerpt("0123456789a", 10), "0123456...");
        let long = "é".repeat(100);
        assert_eq!(excerpt(&long, 10).chars().count(), 10);
        let huge = Value::String("x".repeat(1 << 20));
        assert!(short(&huge).len() < 80);
        let many = Value::Array(vec![Value::Null; 1000]);
        assert_eq!(short(&many), "[1000 items]");
    }
}
