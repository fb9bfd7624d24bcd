//! JSON data: a top-level object whose members hold numbers or nested arrays
//! of numbers (rectangular), read with `serde_json`.

use serde_json::Value;

use super::{Array, DataError, Key};

pub fn read(bytes: &[u8], key: &Key) -> Result<Array, DataError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| DataError::Malformed(format!("bad JSON file: {e}")))?;
    let value = match key {
        Key::All => &doc,
        Key::One(k) => match &doc {
            Value::Object(map) => map.get(k).ok_or_else(|| DataError::NoKey {
                key: k.clone(),
                available: map.keys().cloned().collect(),
            })?,
            _ => {
                return Err(DataError::BadKey(format!(
                    "expected no key (or \"\") for a JSON document that is not an object, found \"{k}\""
                )));
            }
        },
        Key::Many(_) => {
            return Err(DataError::BadKey(
                "expected one key for a JSON file, found a list (lists select CSV columns)".into(),
            ));
        }
    };
    to_array(value)
}

/// Converts a number or rectangular nested arrays of numbers.
pub fn to_array(value: &Value) -> Result<Array, DataError> {
    let mut shape = Vec::new();
    let mut probe = value;
    while let Value::Array(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut data = Vec::new();
    flatten(value, &shape, 0, &mut data)?;
    if data.is_empty() {
        return Err(DataError::Malformed(
            "bad JSON data: the array is empty".into(),
        ));
    }
    Ok(Array { shape, data })
}

fn flatten(v: &Value, shape: &[usize], depth: usize, out: &mut Vec<f64>) -> Result<(), DataError> {
    match v {
        Value::Number(n) if depth == shape.len() => {
            out.push(n.as_f64().unwrap_or(f64::NAN));
            Ok(())
        }
        Value::Array(items) if depth < shape.len() && items.len() == shape[depth] => items
            .iter()
            .try_for_each(|x| flatten(x, shape, depth + 1, out)),
        Value::Array(_) | Value::Number(_) => Err(DataError::Malformed(
            "bad JSON data: expected a rectangular array of numbers, found ragged nesting".into(),
        )),
        other => Err(DataError::Malformed(format!(
            "bad JSON data: expected a number, found {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members() {
        let doc = br#"{"y": [[1, 2], [3, 4.5]], "s": 3, "v": [1e-3]}"#;
        assert_eq!(
            read(doc, &Key::One("y".into())).unwrap(),
            Array::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.5])
        );
        assert_eq!(
            read(doc, &Key::One("s".into())).unwrap().shape,
            Vec::<usize>::new()
        );
        assert_eq!(read(b"[1, 2, 3]", &Key::All).unwrap().shape, vec![3]);
    }

    #[test]
    fn errors() {
        let doc = br#"{"y": [[1, 2], [3]], "z": ["a"], "e": []}"#;
        assert!(read(doc, &Key::One("y".into())).is_err());
        assert!(read(doc, &Key::One("z".into())).is_err());
        assert!(read(doc, &Key::One("e".into())).is_err());
        match read(doc, &Key::One("w".into())) {
            Err(DataError::NoKey { available, .. }) => assert_eq!(available.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(read(b"{", &Key::All).is_err());
        assert!(read(b"[1]", &Key::One("a".into())).is_err());
    }
}
