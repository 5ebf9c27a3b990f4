//! NumPy `.npy` encoding and bounded decoding of untrusted bytes.
//!
//! Decoding is delegated to `ndarray-npy`, which allocates the element buffer
//! from the header's shape before reading the data. A 100-byte input claiming a
//! shape of (10^12,) would therefore allocate terabytes, so `check_header`
//! first proves that the bytes actually hold every element the header claims.

use ndarray::{Array1, Array2, ArrayD};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use thiserror::Error;

use crate::params::printable;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Why bytes are not an acceptable `.npy` array.
#[derive(Debug, Error)]
pub enum NpyError {
    /// No bytes at all.
    #[error("empty input: expected .npy bytes")]
    Empty,
    /// The header is not a valid `.npy` header (what is wrong).
    #[error("not a .npy file: {0}")]
    BadHeader(String),
    /// The header promises more data than follows.
    #[error("the header claims {claimed} data bytes but only {available} follow (truncated?)")]
    Truncated {
        /// Bytes the header says follow.
        claimed: u128,
        /// Bytes that do.
        available: usize,
    },
    /// The array's element type is not the one expected.
    #[error("unsupported dtype {found}; expected {expected}")]
    WrongDtype {
        /// The dtype in the header.
        found: String,
        /// The dtype expected.
        expected: &'static str,
    },
    /// The data does not decode (what is wrong).
    #[error("could not decode array data: {0}")]
    Data(String),
}

struct HeaderInfo {
    descr: String,
    /// Offset of the first data byte.
    data_start: usize,
    /// Data bytes the header claims (checked to be present).
    data_len: usize,
}

/// What an array's header says, before any data is looked at.
struct ParsedHeader {
    descr: String,
    /// Offset of the first data byte.
    data_start: usize,
    /// Data bytes the header claims.
    claimed: u128,
    shape: Vec<u128>,
}

/// Parses the magic string and header dictionary (which must be complete in `bytes`).
fn parse_header(bytes: &[u8]) -> Result<ParsedHeader, NpyError> {
    if bytes.is_empty() {
        return Err(NpyError::Empty);
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(NpyError::BadHeader(
            "missing the \\x93NUMPY magic string".into(),
        ));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::BadHeader("header length is cut off".into()));
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
            (len, 12)
        }
        v => return Err(NpyError::BadHeader(format!("unknown format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| NpyError::BadHeader("header is longer than the input".into()))?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| NpyError::BadHeader("header is not text".into()))?;
    let descr = dict_value(header, "descr")
        .map(|d| d.trim_matches(|c| c == '\'' || c == '"').to_string())
        .ok_or_else(|| NpyError::BadHeader("no 'descr' in header".into()))?;
    let itemsize = item_size(&descr).ok_or_else(|| NpyError::WrongDtype {
        found: printable(&descr, 40),
        expected: "a numeric dtype",
    })?;
    let shape_text = header
        .find("'shape'")
        .and_then(|i| header[i..].find('(').map(|j| i + j))
        .and_then(|open| {
            header[open..]
                .find(')')
                .map(|close| &header[open + 1..open + close])
        })
        .ok_or_else(|| NpyError::BadHeader("no 'shape' in header".into()))?;
    let mut shape = Vec::new();
    for dim in shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let dim: u128 = dim
            .parse()
            .map_err(|_| NpyError::BadHeader(format!("bad shape entry {}", printable(dim, 40))))?;
        shape.push(dim);
    }
    let elements = shape.iter().fold(1u128, |n, &d| n.saturating_mul(d));
    Ok(ParsedHeader {
        descr,
        data_start: end,
        claimed: elements.saturating_mul(itemsize),
        shape,
    })
}

/// Validates the header against the available bytes.
fn check_header(bytes: &[u8]) -> Result<HeaderInfo, NpyError> {
    let parsed = parse_header(bytes)?;
    let available = bytes.len() - parsed.data_start;
    if parsed.claimed > available as u128 {
        return Err(NpyError::Truncated {
            claimed: parsed.claimed,
            available,
        });
    }
    Ok(HeaderInfo {
        descr: parsed.descr,
        data_start: parsed.data_start,
        data_len: parsed.claimed as usize,
    })
}

/// Where an array lies, from its header alone: the data need not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayExtent {
    /// The dtype string, e.g. `<f8`.
    pub descr: String,
    /// Length of each dimension.
    pub shape: Vec<usize>,
    /// Header plus data: where the next array would start.
    pub total_len: usize,
}

/// Reads an array's header from the first bytes of its encoding (a prefix
/// that holds at least the whole header).
pub fn extent(prefix: &[u8]) -> Result<ArrayExtent, NpyError> {
    let parsed = parse_header(prefix)?;
    let too_big = || NpyError::BadHeader("the claimed shape does not fit in memory".into());
    let total = (parsed.data_start as u128)
        .checked_add(parsed.claimed)
        .filter(|&t| t <= isize::MAX as u128)
        .ok_or_else(too_big)?;
    let shape = parsed
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| too_big()))
        .collect::<Result<_, _>>()?;
    Ok(ArrayExtent {
        descr: parsed.descr,
        shape,
        total_len: total as usize,
    })
}

/// Bytes per element of a dtype string (`<f8`, `|b1`, `<U12`): numpy's
/// `U` strings hold 4-byte characters, every other kind `n`-byte items.
/// `None` for what no array here can hold (objects, a missing size).
fn item_size(descr: &str) -> Option<u128> {
    let kind_and_size = descr.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = kind_and_size.chars();
    let kind = chars.next()?;
    let n: u128 = chars.as_str().parse().ok()?;
    match kind {
        'U' => n.checked_mul(4),
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' | 'm' | 'M' => Some(n),
        _ => None,
    }
}

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let i = header.find(&format!("'{key}'"))?;
    let rest = &header[i + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find(',').unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn read<T: ndarray_npy::ReadableElement>(bytes: &[u8]) -> Result<ArrayD<T>, NpyError> {
    ArrayD::<T>::read_npy(bytes).map_err(|e| match e {
        ReadNpyError::WrongDescriptor(d) => NpyError::WrongDtype {
            found: printable(&format!("{d}"), 40),
            expected: "a numeric dtype",
        },
        other => NpyError::Data(other.to_string()),
    })
}

/// Splits bytes holding one `.npy` array followed by more data into the
/// array's bytes and the rest (numpy reads such files with repeated `np.load`).
pub fn split_first(bytes: &[u8]) -> Result<(&[u8], &[u8]), NpyError> {
    let info = check_header(bytes)?;
    Ok(bytes.split_at(info.data_start + info.data_len))
}

/// A float64 array of any dimension.
pub fn decode_f64(bytes: &[u8]) -> Result<ArrayD<f64>, NpyError> {
    let info = check_header(bytes)?;
    if !matches!(info.descr.as_str(), "<f8" | "f8") {
        return Err(NpyError::WrongDtype {
            found: printable(&info.descr, 40),
            expected: "little-endian float64 ('<f8')",
        });
    }
    read::<f64>(exact(bytes)?)
}

/// The array's own bytes: trailing data after it is an error.
fn exact(bytes: &[u8]) -> Result<&[u8], NpyError> {
    let (array, rest) = split_first(bytes)?;
    if !rest.is_empty() {
        return Err(NpyError::Data(format!(
            "{} unexpected bytes after the array",
            rest.len()
        )));
    }
    Ok(array)
}

/// Any numeric array numpy writes (float64/32, signed and unsigned
/// integers of 1 to 8 bytes, bool; either byte order), converted to f64,
/// with numpy's name for the dtype it had ("float32", "int64", ...).
pub fn decode_numeric(bytes: &[u8]) -> Result<(ArrayD<f64>, &'static str), NpyError> {
    let info = check_header(bytes)?;
    let (order, kind) = info.descr.split_at(info.descr.len().min(1));
    let kind = if matches!(order, "<" | ">" | "|" | "=") {
        kind
    } else {
        info.descr.as_str()
    };
    // Each arm checks the length only once the dtype is known: a `<U1`
    // array is an unsupported dtype, not "bytes after the array".
    let data = || exact(bytes);
    Ok(match kind {
        "f8" => (read::<f64>(data()?)?, "float64"),
        "f4" => (read::<f32>(data()?)?.mapv(f64::from), "float32"),
        "i8" => (read::<i64>(data()?)?.mapv(|v| v as f64), "int64"),
        "i4" => (read::<i32>(data()?)?.mapv(f64::from), "int32"),
        "i2" => (read::<i16>(data()?)?.mapv(f64::from), "int16"),
        "i1" => (read::<i8>(data()?)?.mapv(f64::from), "int8"),
        "u8" => (read::<u64>(data()?)?.mapv(|v| v as f64), "uint64"),
        "u4" => (read::<u32>(data()?)?.mapv(f64::from), "uint32"),
        "u2" => (read::<u16>(data()?)?.mapv(f64::from), "uint16"),
        "u1" => (read::<u8>(data()?)?.mapv(f64::from), "uint8"),
        "b1" => (
            read::<bool>(data()?)?.mapv(|b| f64::from(u8::from(b))),
            "bool",
        ),
        _ => return Err(NpyError::WrongDtype {
            found: printable(&info.descr, 40),
            expected:
                "a float (float64, float32), integer (int8 to int64, uint8 to uint64) or bool dtype",
        }),
    })
}

/// Labels stored as integers, booleans or floats, returned as f64.
pub fn decode_labels(bytes: &[u8]) -> Result<ArrayD<f64>, NpyError> {
    decode_numeric(bytes).map(|(a, _)| a)
}

/// A 1-d float64 array.
pub fn decode_f64_1d(bytes: &[u8]) -> Result<Array1<f64>, NpyError> {
    let a = decode_f64(bytes)?;
    let ndim = a.ndim();
    a.into_dimensionality()
        .map_err(|_| NpyError::Data(format!("expected a 1-d array, got {ndim}-d")))
}

/// A 2-d float64 array.
pub fn decode_f64_2d(bytes: &[u8]) -> Result<Array2<f64>, NpyError> {
    let a = decode_f64(bytes)?;
    let ndim = a.ndim();
    a.into_dimensionality()
        .map_err(|_| NpyError::Data(format!("expected a 2-d array, got {ndim}-d")))
}

/// `.npy` bytes of `a`, whose data takes `data_bytes`: the buffer is sized
/// for header and data up front, so a multi-MiB array is written once
/// instead of being copied at every doubling of a growing buffer.
fn encode<A: WriteNpyExt>(a: &A, data_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_bytes + HEADER_ROOM);
    append(&mut out, a);
    out
}

/// Appends `a`'s `.npy` bytes to `out`.
fn append<A: WriteNpyExt>(out: &mut Vec<u8>, a: &A) {
    let start = out.len();
    // Writing to a Vec cannot fail for the plain element types used here.
    if a.write_npy(&mut *out).is_err() {
        out.truncate(start);
    }
}

/// A float64 matrix followed by an int64 vector, as two `.npy` files back to
/// back in one buffer sized for both.
pub fn encode_f64_2d_then_i64_1d(a: &Array2<f64>, b: &Array1<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity((a.len() + b.len()) * 8 + 2 * HEADER_ROOM);
    append(&mut out, a);
    append(&mut out, b);
    out
}

/// A float64 matrix as `.npy` bytes (C order).
pub fn encode_f64_2d(a: &Array2<f64>) -> Vec<u8> {
    encode(a, a.len() * 8)
}

/// A float64 vector as `.npy` bytes.
pub fn encode_f64_1d(a: &Array1<f64>) -> Vec<u8> {
    encode(a, a.len() * 8)
}

/// An int64 vector as `.npy` bytes.
pub fn encode_i64_1d(a: &Array1<i64>) -> Vec<u8> {
    encode(a, a.len() * 8)
}

/// The `.npy` (version 1.0) header of a C-order float64 matrix of `rows` x
/// `cols`, byte for byte what ndarray-npy writes: the array's description
/// as a Python dict literal, padded with spaces so that the header ends on a
/// multiple of 64 bytes, then a newline.
pub fn f64_2d_header(rows: usize, cols: usize) -> Vec<u8> {
    const VERSION_1_0: [u8; 2] = [1, 0];
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols})}}");
    // magic, version, length, dict, newline; then padding, always at least
    // one space (ndarray-npy pads a whole 64 when it would be none).
    let prefix = MAGIC.len() + VERSION_1_0.len() + 2;
    let unpadded = prefix + dict.len() + 1;
    let total = unpadded + (64 - unpadded % 64);
    let header_len = u16::try_from(total - prefix).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(total + rows * cols * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION_1_0);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// Room for an `.npy` header: numpy pads it to a multiple of 64 bytes, and
/// one for a 2-d float64 array of any realistic shape fits in 128.
const HEADER_ROOM: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_header_is_ndarray_npys_byte_for_byte() {
        let mut shapes = vec![(1, 1), (2, 3), (300, 1024)];
        // Empty matrices of every width of shape: headers of every length.
        // (ndarray takes sides up to isize::MAX, 19 digits.)
        for k in 0..19 {
            shapes.push((0, 10usize.pow(k)));
            shapes.push((10usize.pow(k), 0));
        }
        shapes.push((0, isize::MAX as usize));
        for (rows, cols) in shapes {
            let encoded = encode_f64_2d(&Array2::zeros((rows, cols)));
            let ours = f64_2d_header(rows, cols);
            assert_eq!(ours[..], encoded[..ours.len()], "({rows}, {cols})");
            assert_eq!(ours.len() % 64, 0);
            assert_eq!(encoded.len(), ours.len() + rows * cols * 8);
        }
    }

    #[test]
    fn round_trip_2d() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64 * 0.5);
        assert_eq!(decode_f64_2d(&encode_f64_2d(&a)).unwrap(), a);
    }

    #[test]
    fn huge_claimed_shape_is_refused_without_allocating() {
        let bytes = encode_f64_1d(&Array1::from(vec![1.0, 2.0]));
        let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        // bytes 0..10 are the magic, version and header length (not UTF-8)
        let header = std::str::from_utf8(&bytes[10..header_end]).unwrap();
        // Same header length, so only the shape lies.
        let lying = header.replacen("(2,)", "(9999999999999,)", 1).replacen(
            &format!("{}\n", " ".repeat(12)),
            "\n",
            1,
        );
        assert_eq!(lying.len(), header.len());
        let mut crafted = bytes[..10].to_vec();
        crafted.extend_from_slice(lying.as_bytes());
        crafted.extend_from_slice(&bytes[header_end..]);
        let err = decode_f64(&crafted).unwrap_err();
        assert!(matches!(err, NpyError::Truncated { .. }), "{err}");
    }

    #[test]
    fn truncated_data_is_refused() {
        let bytes = encode_f64_1d(&Array1::from(vec![1.0, 2.0, 3.0]));
        let err = decode_f64(&bytes[..bytes.len() - 4]).unwrap_err();
        assert!(matches!(err, NpyError::Truncated { .. }), "{err}");
    }

    #[test]
    fn garbage_and_empty_are_refused() {
        assert!(matches!(decode_f64(b""), Err(NpyError::Empty)));
        assert!(matches!(
            decode_f64(b"hello world, not numpy"),
            Err(NpyError::BadHeader(_))
        ));
    }

    #[test]
    fn wrong_dtype_is_named() {
        let bytes = encode_i64_1d(&Array1::from(vec![1, 2]));
        let err = decode_f64(&bytes).unwrap_err();
        assert!(err.to_string().contains("<i8"), "{err}");
    }

    /// A version-2 `.npy` header holding `descr` and `shape` as given, then `data`.
    fn crafted(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}\n");
        let mut out = b"\x93NUMPY\x02\x00".to_vec();
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Header text never reaches a message raw or whole: a forged log line,
    /// an escape sequence or megabytes of descr or shape come out escaped
    /// and cut.
    #[test]
    fn hostile_header_text_is_escaped_and_cut() {
        let forged = format!(
            "<f8\n2026-12-06T00:00:00Z  INFO forged\u{1b}[2J{}",
            "x".repeat(1 << 20)
        );
        let long_shape = format!("1, {}", "9".repeat(1 << 20));
        for bytes in [
            crafted(&forged, "1,", &[0; 8]),
            crafted("<f8", &long_shape, &[0; 8]),
            crafted("<f8", "1, 2\u{1b}x", &[0; 8]),
        ] {
            for err in [
                decode_f64(&bytes).unwrap_err(),
                decode_numeric(&bytes).unwrap_err(),
            ] {
                let text = err.to_string();
                assert!(text.len() < 300, "{} bytes: {}", text.len(), &text[..300]);
                assert!(!text.chars().any(char::is_control), "{text}");
            }
        }
    }

    /// numpy's unicode strings are an unsupported dtype, whatever their
    /// length says about the bytes after them.
    #[test]
    fn unicode_labels_are_an_unsupported_dtype() {
        let bytes = crafted("<U1", "150,", &[0x41, 0, 0, 0].repeat(150));
        let err = decode_numeric(&bytes).unwrap_err();
        assert!(
            matches!(&err, NpyError::WrongDtype { found, .. } if found == "<U1"),
            "{err}"
        );
        let short = crafted("<U1", "150,", &[0x41, 0, 0, 0].repeat(10));
        assert!(matches!(
            decode_numeric(&short),
            Err(NpyError::Truncated { .. })
        ));
    }
}

/// Serde adapter that stores a 2-d float64 array as `.npy` bytes (a
/// MessagePack `bin`), so large arrays inside models encode and decode at
/// memory speed and read in Python with `np.load(io.BytesIO(b))`.
pub mod serde_2d {
    use ndarray::Array2;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the matrix as `.npy` bytes.
    pub fn serialize<S: Serializer>(a: &Array2<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&super::encode_f64_2d(a))
    }

    /// Reads a matrix from `.npy` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array2<f64>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        super::decode_f64_2d(&bytes).map_err(serde::de::Error::custom)
    }
}

/// [`serde_2d`] for 1-d float64 arrays.
pub mod serde_1d {
    use ndarray::Array1;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the vector as `.npy` bytes.
    pub fn serialize<S: Serializer>(a: &Array1<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&super::encode_f64_1d(a))
    }

    /// Reads a vector from `.npy` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array1<f64>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        super::decode_f64_1d(&bytes).map_err(serde::de::Error::custom)
    }
}
