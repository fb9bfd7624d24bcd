//! Numeric tables in CSV, read with the `csv` crate: the first row names
//! the columns, every later non-empty row holds one number per column.
//! Fields may be quoted with `"` (`""` inside a quoted field is a quote);
//! surrounding spaces are ignored. Lines starting with `#` are comments
//! (ebm's own sample files carry their run's settings so), so a file ebm
//! wrote loads back. The caller has read the bytes within its size limit;
//! rows are converted one at a time, so memory is the values kept.

use super::{Array, DataError, Key};

/// The later non-empty rows of a CSV text, as `(line number, fields)` with
/// 1-based line numbers counting every line of the file; each row is checked
/// to have as many fields as the header.
pub struct Records<'a> {
    text: &'a [u8],
    reader: ::csv::Reader<&'a [u8]>,
    record: ::csv::StringRecord,
    width: usize,
}

impl Iterator for Records<'_> {
    type Item = Result<(usize, Vec<String>), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Err(e) => return Some(Err(malformed(e))),
                Ok(true) if is_blank(&self.record) => continue,
                Ok(true) => return Some(self.fields()),
            }
        }
    }
}

impl Records<'_> {
    fn fields(&self) -> Result<(usize, Vec<String>), DataError> {
        let line = line_of(self.text, &self.record);
        if self.record.len() != self.width {
            return Err(DataError::Malformed(format!(
                "bad CSV file: line {line} has {} fields, expected {} like the header",
                self.record.len(),
                self.width
            )));
        }
        Ok((line, self.record.iter().map(str::to_string).collect()))
    }
}

/// A line of spaces reads as one empty field: skipped like an empty line.
fn is_blank(record: &::csv::StringRecord) -> bool {
    record.len() == 1 && record[0].is_empty()
}

/// The 1-based line a record starts on. The reader's position is where
/// it began reading the record, before the comment and blank lines it
/// skipped on the way: those are stepped over here.
fn line_of(text: &[u8], record: &::csv::StringRecord) -> usize {
    let Some(pos) = record.position() else {
        return 0;
    };
    let (mut line, mut at) = (pos.line() as usize, pos.byte() as usize);
    while let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let this = &rest[..len];
        let skipped = this.first() == Some(&b'#') || this.iter().all(u8::is_ascii_whitespace);
        if !skipped {
            break;
        }
        line += 1;
        at += len;
    }
    line
}

fn malformed(e: ::csv::Error) -> DataError {
    let at = e
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    let what = match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        _ => e.to_string(),
    };
    DataError::Malformed(format!("bad CSV file: {at}{what}"))
}

/// The header's column names and the rows after it, not yet converted to
/// numbers (so a reader can convert only the columns it needs).
pub fn records(bytes: &[u8]) -> Result<(Vec<String>, Records<'_>), DataError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| DataError::Malformed("bad CSV file: not UTF-8 text".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut head = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut head) {
            Ok(true) if is_blank(&head) => continue,
            Ok(true) => break,
            Ok(false) => return Err(DataError::Malformed("bad CSV file: it is empty".into())),
            Err(e) => return Err(malformed(e)),
        }
    }
    let columns: Vec<String> = head.iter().map(str::to_string).collect();
    // NumPy's savetxt writes its header as a `# a,b` comment: then the first
    // line left would be data, read silently as column names.
    let at = line_of(text.as_bytes(), &head);
    let commented = text
        .lines()
        .take(at.saturating_sub(1))
        .any(|l| l.trim_start().starts_with('#'));
    if commented && columns.iter().all(|c| c.parse::<f64>().is_ok()) {
        return Err(DataError::Malformed(format!(
            "bad CSV file: line {at} holds numbers where the header (column names) should be; lines starting with `#` are comments, so write the header without one (NumPy: savetxt(..., comments=\"\"))"
        )));
    }
    let width = columns.len();
    let records = Records {
        text: text.as_bytes(),
        reader,
        record: ::csv::StringRecord::new(),
        width,
    };
    Ok((columns, records))
}

/// One cell as a number; the error names the line and the column.
pub fn number(field: &str, line: usize, column: &str) -> Result<f64, DataError> {
    field.parse::<f64>().map_err(|_| {
        DataError::Malformed(format!(
            "bad CSV file: line {line}, column `{column}`: expected a number, found `{field}`"
        ))
    })
}

fn column(columns: &[String], name: &str) -> Result<usize, DataError> {
    columns
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| DataError::NoKey {
            key: name.to_string(),
            available: columns.to_vec(),
        })
}

/// `key` of a CSV text as an array (`load`): the selected columns of every
/// row (every field must be a number), read row by row into one buffer, so memory is the values kept (at
/// most `max_values`, else [`DataError::TooLarge`] as soon as a row passes
/// it), not a table of every field. Every value must be a finite number,
/// and there must be at least one row.
pub fn read(bytes: &[u8], key: &Key, max_values: usize) -> Result<Array, DataError> {
    let (columns, records) = records(bytes)?;
    let cols: Vec<usize> = match key {
        Key::One(name) => vec![column(&columns, name)?],
        Key::Many(names) => names
            .iter()
            .map(|k| column(&columns, k))
            .collect::<Result<Vec<_>, _>>()?,
        Key::All => (0..columns.len()).collect(),
    };
    let mut data = Vec::new();
    let mut rows = 0usize;
    for record in records {
        let (line, fields) = record?;
        if data.len() + cols.len() > max_values {
            return Err(DataError::TooLarge { limit: max_values });
        }
        // Every field is a number (the file is a numeric table), even in
        // columns not kept.
        for (f, col) in fields.iter().zip(&columns) {
            number(f, line, col)?;
        }
        for &c in &cols {
            let v = number(&fields[c], line, &columns[c])?;
            if !v.is_finite() {
                return Err(DataError::Malformed(format!(
                    "bad CSV file: line {line}, column `{}`: expected a finite number, found `{}`",
                    columns[c], fields[c]
                )));
            }
            data.push(v);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Malformed(
            "bad CSV file: expected rows after the header, found none".into(),
        ));
    }
    let shape = match key {
        Key::One(_) => vec![rows],
        _ => vec![rows, cols.len()],
    };
    Ok(Array::new(shape, data))
}

/// Writes a header and rows of numbers.
pub fn to_string(columns: &[&str], rows: &[Vec<f64>]) -> String {
    let mut out = columns.join(",");
    out.push('\n');
    for r in rows {
        let cells: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"a, b,\"c\"\n1,2,3\n\n4,5.5,-6e-1\n";

    #[test]
    fn reads_columns() {
        assert_eq!(
            read(TABLE, &Key::One("b".into()), usize::MAX).unwrap(),
            Array::new(vec![2], vec![2.0, 5.5])
        );
        assert_eq!(
            read(TABLE, &Key::Many(vec!["c".into(), "a".into()]), usize::MAX).unwrap(),
            Array::new(vec![2, 2], vec![3.0, 1.0, -0.6, 4.0])
        );
        assert_eq!(
            read(TABLE, &Key::All, usize::MAX).unwrap().shape,
            vec![2, 3]
        );
    }

    #[test]
    fn comments_are_skipped_and_a_commented_header_is_named() {
        let text = b"# ebm sample\n# seed = 3\nx,y\n1,2\n# a note\n3,4\n";
        assert_eq!(
            read(text, &Key::All, usize::MAX).unwrap().data,
            vec![1.0, 2.0, 3.0, 4.0]
        );
        let bad = b"# note\n\nx,y\n1,2\n# a note\n\n3,4,5\n";
        let e = read(bad, &Key::All, usize::MAX).unwrap_err().to_string();
        assert!(e.contains("line 7 has 3 fields"), "{e}");
        let numpy = b"# x,y\n1,2\n3,4\n";
        let e = read(numpy, &Key::All, usize::MAX).unwrap_err().to_string();
        assert!(e.contains("line 2 holds numbers where the header"), "{e}");
    }

    #[test]
    fn round_trip() {
        let rows = vec![vec![1.5, -2.0], vec![0.25, 1e-3]];
        let text = to_string(&["x", "y"], &rows);
        let a = read(text.as_bytes(), &Key::All, usize::MAX).unwrap();
        assert_eq!(a.data, vec![1.5, -2.0, 0.25, 1e-3]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            read(TABLE, &Key::One("d".into()), usize::MAX),
            Err(DataError::NoKey { .. })
        ));
        let e = read(b"a,b\n1,x\n", &Key::All, usize::MAX).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad CSV file: line 2, column `b`: expected a number, found `x`"
        );
        assert!(read(b"a,b\n1\n", &Key::All, usize::MAX).is_err());
        assert!(read(b"", &Key::All, usize::MAX).is_err());
        assert!(read(&[0xff, 0xfe], &Key::All, usize::MAX).is_err());
    }

    #[test]
    fn load_rules() {
        let e = read(b"a,b\n", &Key::All, usize::MAX).unwrap_err();
        assert!(
            e.to_string().contains("expected rows after the header"),
            "{e}"
        );
        // A file of NUL bytes is one header "column" and no rows.
        assert!(read(&[0u8; 64], &Key::All, usize::MAX).is_err());
        let e = read(b"a,b\n1,nan\n", &Key::All, usize::MAX).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a finite number, found `nan`"),
            "{e}"
        );
        assert!(read(b"a,b\n1,-inf\n", &Key::One("a".into()), usize::MAX).is_ok());
        assert_eq!(
            read(b"a,b\n1,2\n3,4\n", &Key::All, 3),
            Err(DataError::TooLarge { limit: 3 })
        );
        assert!(read(b"a,b\n1,2\n3,4\n", &Key::All, 4).is_ok());
    }
}
