//! JSON data: a top-level object whose members hold numbers or nested arrays
//! of numbers (rectangular), or such a value as the whole document. Parsed
//! with `serde_json` straight into one buffer of numbers and a shape (no
//! `Value` tree, which takes some 20 bytes per number of text): memory is the
//! values kept, at most the caller's limit.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Array, DataError, Key};

/// What the parse has found so far.
struct State {
    /// The length of the arrays at each depth (the first one closed there).
    dims: Vec<Option<usize>>,
    /// The depth the numbers sit at (the first number's).
    leaf: Option<usize>,
    data: Vec<f64>,
    max_values: usize,
    /// A failure that is not a syntax error (ragged nesting, too many
    /// values, a key on a document that is not an object), kept typed.
    failure: Option<DataError>,
}

impl State {
    fn fail<E: de::Error>(&mut self, e: DataError) -> E {
        let text = e.to_string();
        self.failure = Some(e);
        E::custom(text)
    }

    fn ragged<E: de::Error>(&mut self) -> E {
        self.fail(DataError::Malformed(
            "bad JSON data: expected a rectangular array of numbers, found ragged nesting".into(),
        ))
    }
}

/// A value at `depth` of the selected member: a number or an array.
struct At<'s> {
    state: &'s RefCell<State>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl At<'_> {
    fn number<E: de::Error>(self, v: f64) -> Result<(), E> {
        let mut st = self.state.borrow_mut();
        match st.leaf {
            None => st.leaf = Some(self.depth),
            Some(l) if l != self.depth => return Err(st.ragged()),
            Some(_) => {}
        }
        if st.data.len() >= st.max_values {
            let limit = st.max_values;
            return Err(st.fail(DataError::TooLarge { limit }));
        }
        st.data.push(v);
        Ok(())
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.number(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        {
            let mut st = self.state.borrow_mut();
            if st.leaf.is_some_and(|l| depth >= l) {
                return Err(st.ragged());
            }
        }
        let mut n = 0usize;
        while seq
            .next_element_seed(At {
                state: self.state,
                depth: depth + 1,
            })?
            .is_some()
        {
            n += 1;
        }
        let mut st = self.state.borrow_mut();
        if st.dims.len() <= depth {
            st.dims.resize(depth + 1, None);
        }
        match st.dims[depth] {
            None => st.dims[depth] = Some(n),
            Some(m) if m != n => return Err(st.ragged()),
            Some(_) => {}
        }
        Ok(())
    }
}

/// The top-level object: the member `key` is read, the others skipped.
struct Member<'s> {
    state: &'s RefCell<State>,
    key: &'s str,
    /// Every member's name, for "no key" messages.
    names: &'s RefCell<Vec<String>>,
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        let mut found = false;
        while let Some(name) = map.next_key::<String>()? {
            if name == self.key && !found {
                found = true;
                map.next_value_seed(At {
                    state: self.state,
                    depth: 0,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            self.names.borrow_mut().push(name);
        }
        Ok(found)
    }
}

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        // Anything but an object cannot have the member.
        let (state, key) = (self.state, self.key);
        d.deserialize_any(self).map_err(|e| {
            let mut st = state.borrow_mut();
            if st.failure.is_none() && e.to_string().contains("expected an object") {
                st.fail(DataError::BadKey(format!(
                    "expected no key (or \"\") for a JSON document that is not an object, found \"{key}\""
                )))
            } else {
                e
            }
        })
    }
}

/// `key` of a JSON document as an array, of at most `max_values` values
/// (the parse stops there).
pub fn read(bytes: &[u8], key: &Key, max_values: usize) -> Result<Array, DataError> {
    let state = RefCell::new(State {
        dims: Vec::new(),
        leaf: None,
        data: Vec::new(),
        max_values,
        failure: None,
    });
    let names = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = match key {
        Key::All => At {
            state: &state,
            depth: 0,
        }
        .deserialize(&mut de)
        .map(|()| true),
        Key::One(k) => Member {
            state: &state,
            key: k,
            names: &names,
        }
        .deserialize(&mut de),
        Key::Many(_) => {
            return Err(DataError::BadKey(
                "expected one key for a JSON file, found a list (lists select CSV columns)".into(),
            ));
        }
    };
    let found = parsed.and_then(|found| de.end().map(|()| found));
    let st = state.into_inner();
    let found = match (found, st.failure) {
        (_, Some(typed)) => return Err(typed),
        (Err(e), None) => return Err(DataError::Malformed(format!("bad JSON file: {e}"))),
        (Ok(found), None) => found,
    };
    if let (false, Key::One(k)) = (found, key) {
        return Err(DataError::NoKey {
            key: k.clone(),
            available: names.into_inner(),
        });
    }
    let shape: Option<Vec<usize>> = match st.leaf {
        Some(l) => st.dims.iter().take(l).copied().collect(),
        None => None,
    };
    match shape {
        Some(shape) if !st.data.is_empty() => Ok(Array {
            shape,
            data: st.data,
        }),
        _ => Err(DataError::Malformed(
            "bad JSON data: the array is empty".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members() {
        let doc = br#"{"y": [[1, 2], [3, 4.5]], "s": 3, "v": [1e-3]}"#;
        assert_eq!(
            read(doc, &Key::One("y".into()), usize::MAX).unwrap(),
            Array::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.5])
        );
        assert_eq!(
            read(doc, &Key::One("s".into()), usize::MAX).unwrap().shape,
            Vec::<usize>::new()
        );
        assert_eq!(
            read(b"[1, 2, 3]", &Key::All, usize::MAX).unwrap().shape,
            vec![3]
        );
    }

    #[test]
    fn errors() {
        let doc = br#"{"y": [[1, 2], [3]], "z": ["a"], "e": []}"#;
        assert!(read(doc, &Key::One("y".into()), usize::MAX).is_err());
        assert!(read(doc, &Key::One("z".into()), usize::MAX).is_err());
        assert!(read(doc, &Key::One("e".into()), usize::MAX).is_err());
        match read(doc, &Key::One("w".into()), usize::MAX) {
            Err(DataError::NoKey { available, .. }) => assert_eq!(available.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(read(b"{", &Key::All, usize::MAX).is_err());
        assert!(read(b"[1]", &Key::One("a".into()), usize::MAX).is_err());
        assert!(read(b"[[1, 2], 3]", &Key::All, usize::MAX).is_err());
        assert!(read(b"[1, [2]]", &Key::All, usize::MAX).is_err());
        assert!(read(b"[[], [1]]", &Key::All, usize::MAX).is_err());
        assert!(read(b"[[]]", &Key::All, usize::MAX).is_err());
        assert!(read(b"[1] x", &Key::All, usize::MAX).is_err());
        assert!(read(b"[1e400]", &Key::All, usize::MAX).is_err());
        assert!(read(b"[null]", &Key::All, usize::MAX).is_err());
        assert_eq!(
            read(b"[1, 2, 3]", &Key::All, 2),
            Err(DataError::TooLarge { limit: 2 })
        );
        assert_eq!(
            read(b"7", &Key::All, usize::MAX).unwrap(),
            Array::new(vec![], vec![7.0])
        );
        assert_eq!(
            read(
                br#"{"a": "skipped", "b": [[1], [2]]}"#,
                &Key::One("b".into()),
                2
            )
            .unwrap(),
            Array::new(vec![2, 1], vec![1.0, 2.0])
        );
    }
}
