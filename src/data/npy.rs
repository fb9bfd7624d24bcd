//! A small NPY (format 1.0–3.0) reader and writer. Reading supports
//! little- and big-endian `f4 f8 i4 i8` in C order; values become f64.

use super::{Array, DataError};

const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(msg: impl Into<String>) -> DataError {
    DataError::Malformed(format!("bad NPY file: {}", msg.into()))
}

/// Parses an NPY file's bytes.
pub fn read(bytes: &[u8]) -> Result<Array, DataError> {
    read_limited(bytes, usize::MAX)
}

/// `load`'s rules for an array read: not empty, every value finite.
pub fn finite(a: Array) -> Result<Array, DataError> {
    if a.data.is_empty() {
        return Err(bad("the array is empty"));
    }
    match a.data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(bad(format!(
            "expected finite numbers, found {} at flat index {i}",
            a.data[i]
        ))),
        None => Ok(a),
    }
}

/// [`read`], refused ([`DataError::TooLarge`]) before any value is
/// converted when the header's shape holds more than `max_values` values.
pub fn read_limited(bytes: &[u8], max_values: usize) -> Result<Array, DataError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!("unsupported version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
    if fortran.trim() != "False" {
        return Err(bad("Fortran order is not supported; save with C order"));
    }
    let shape =
        parse_shape(&dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in header"))?)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape too large"))?;
    if n > max_values {
        return Err(DataError::TooLarge { limit: max_values });
    }
    let (little, kind, size) = match descr.as_bytes() {
        [e @ (b'<' | b'>' | b'|' | b'='), k, s @ ..] => {
            (*e != b'>', *k, std::str::from_utf8(s).unwrap_or(""))
        }
        _ => return Err(bad(format!("unknown dtype '{descr}'"))),
    };
    let width = match (kind, size) {
        (b'f', "4") | (b'i', "4") => 4,
        (b'f', "8") | (b'i', "8") => 8,
        _ => {
            return Err(bad(format!(
                "unsupported dtype '{descr}' (expected f4, f8, i4 or i8)"
            )));
        }
    };
    let body = &bytes[end..];
    if body.len() / width < n {
        return Err(bad(format!(
            "expected {n} values of {width} bytes, found {} bytes",
            body.len()
        )));
    }
    let data = body[..n * width]
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            if !little {
                b[..width].reverse();
            }
            match (kind, width) {
                (b'f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                (b'f', _) => f64::from_le_bytes(b),
                (_, 4) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                _ => i64::from_le_bytes(b) as f64,
            }
        })
        .collect();
    Ok(Array { shape, data })
}

/// The text after `'key':` in a Python dict literal, up to the matching `,` or `}`.
fn dict_value(header: &str, key: &str) -> Option<String> {
    let pat_a = format!("'{key}'");
    let pat_b = format!("\"{key}\"");
    let at = header.find(&pat_a).or_else(|| header.find(&pat_b))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        let close = rest.find(')')?;
        return Some(rest[..=close].to_string());
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

fn parse_shape(text: &str) -> Result<Vec<usize>, DataError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| bad("shape is not a tuple"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad dimension '{s}'")))
        })
        .collect()
}

/// The NPY header (magic, version, dictionary, padding) of a C-order
/// array of `descr` (`<f8`, `<f4`) and `shape`: the values follow it.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Pad so that the data starts on a 64-byte boundary; the header ends in '\n'.
    let total = MAGIC.len() + 4 + text.len() + 1;
    text.push_str(&" ".repeat((64 - total % 64) % 64));
    text.push('\n');
    let mut out = Vec::with_capacity(10 + text.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Encodes an f64 array as NPY (`<f8`).
pub fn to_bytes_f64(shape: &[usize], data: &[f64]) -> Vec<u8> {
    let mut out = header("<f8", shape);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes an f32 array as NPY (`<f4`).
pub fn to_bytes_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = header("<f4", shape);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes an f64 array to an NPY file.
pub fn write_f64(path: &std::path::Path, shape: &[usize], data: &[f64]) -> Result<(), String> {
    super::atomic::write_atomic(path, &to_bytes_f64(shape, data))
}

/// Writes an f32 array to an NPY file.
pub fn write_f32(path: &std::path::Path, shape: &[usize], data: &[f32]) -> Result<(), String> {
    super::atomic::write_atomic(path, &to_bytes_f32(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f64_and_f32() {
        let a = Array::new(vec![2, 3], vec![1.0, -2.5, 3.0, 4.0, 5.0, 6.25]);
        let bytes = to_bytes_f64(&a.shape, &a.data);
        assert_eq!((bytes.len() - a.data.len() * 8) % 64, 0);
        assert_eq!(read(&bytes).unwrap(), a);
        let f: Vec<f32> = a.data.iter().map(|&v| v as f32).collect();
        assert_eq!(read(&to_bytes_f32(&[6], &f)).unwrap().data, a.data);
    }

    #[test]
    fn scalar_and_vector_shapes() {
        assert_eq!(
            read(&to_bytes_f64(&[], &[7.0])).unwrap().shape,
            Vec::<usize>::new()
        );
        assert_eq!(
            read(&to_bytes_f64(&[3], &[1.0, 2.0, 3.0])).unwrap().shape,
            vec![3]
        );
    }

    fn handmade(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_integer_and_big_endian() {
        let mut body = Vec::new();
        for v in [1i32, -2, 3] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            read(&handmade("<i4", "(3,)", &body)).unwrap().data,
            vec![1.0, -2.0, 3.0]
        );
        let mut body = Vec::new();
        for v in [5i64, -6] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(
            read(&handmade(">i8", "(2,)", &body)).unwrap().data,
            vec![5.0, -6.0]
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(read(b"hello").is_err());
        assert!(read(&handmade("<c16", "(1,)", &[0; 16])).is_err());
        assert!(read(&handmade("<f8", "(4,)", &[0; 8])).is_err());
        assert!(read(&handmade("<f8", "(99999999999999,99999999999)", &[])).is_err());
        let mut truncated = handmade("<f8", "(1,)", &[0; 8]);
        truncated.truncate(12);
        assert!(read(&truncated).is_err());
    }
}
