//! `Dataset::from_file` and `data::read_regular` on real files: the bundled
//! digits, CSV and NPY files in a scratch folder, and the paths a reader
//! must refuse without reading (folders, FIFOs, devices, files over the
//! size limit).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ebm::data::{self, DataError, Dataset, Key, MAX_DATA_BYTES, npy, read_regular};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-datasets-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn io_error(r: Result<impl std::fmt::Debug, DataError>) -> String {
    match r {
        Err(DataError::Io(m)) => m,
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn digits_load_with_their_labels() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv");
    let d = Dataset::from_file(&path, None, Some("label")).unwrap();
    assert_eq!((d.rows, d.dim, d.x.len()), (1797, 64, 1797 * 64));
    assert_eq!(d.columns.first().map(String::as_str), Some("p0"));
    assert_eq!(d.columns.last().map(String::as_str), Some("p63"));
    let labels = d.labels.as_ref().unwrap();
    assert_eq!(labels.len(), 1797);
    for digit in 0..10 {
        assert!(labels.contains(&digit), "no {digit}");
    }
    assert!(labels.iter().all(|l| (0..10).contains(l)));
    assert!(
        d.x.iter()
            .all(|v| (0.0..=16.0).contains(v) && v.fract() == 0.0)
    );
    assert!(d.check_width(64).is_ok());
    let two = ["p27".to_string(), "p36".to_string()];
    let d2 = Dataset::from_file(&path, Some(&two), Some("label")).unwrap();
    assert_eq!((d2.rows, d2.dim), (1797, 2));
    assert_eq!(d2.row(5), &[d.row(5)[27], d.row(5)[36]]);
}

#[test]
fn csv_and_npy_files() {
    let dir = scratch("files");
    std::fs::write(dir.join("t.csv"), "a,b,y\n1,2,0\n3,4,1\n").unwrap();
    let d = Dataset::from_file(&dir.join("t.csv"), None, Some("y")).unwrap();
    assert_eq!(
        (d.x.clone(), d.labels.clone()),
        (vec![1.0, 2.0, 3.0, 4.0], Some(vec![0, 1]))
    );
    assert_eq!(d.source, dir.join("t.csv").display().to_string());
    npy::write_f64(&dir.join("m.npy"), &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let cols = ["2".to_string()];
    let m = Dataset::from_file(&dir.join("m.npy"), Some(&cols), Some("0")).unwrap();
    assert_eq!(
        (m.x.clone(), m.labels.clone()),
        (vec![3.0, 6.0], Some(vec![1, 4]))
    );
    std::fs::write(dir.join("j.json"), "[1]").unwrap();
    assert_eq!(
        Dataset::from_file(&dir.join("j.json"), None, None).unwrap_err(),
        DataError::UnknownFormat(".json".into())
    );
    let missing = io_error(Dataset::from_file(&dir.join("nope.csv"), None, None));
    assert!(missing.starts_with("no such file"), "{missing}");
    std::fs::create_dir_all(dir.join("folder.csv")).unwrap();
    let folder = io_error(Dataset::from_file(&dir.join("folder.csv"), None, None));
    assert!(folder.ends_with("is a folder"), "{folder}");
}

#[test]
fn size_limit_is_checked_before_reading() {
    let dir = scratch("size");
    let path = dir.join("big.csv");
    std::fs::write(&path, "a\n1\n2\n").unwrap();
    assert_eq!(read_regular(&path, 6).unwrap(), b"a\n1\n2\n");
    let e = io_error(read_regular(&path, 5));
    assert!(
        e.ends_with("it has 6 bytes, more than the limit of 5 bytes"),
        "{e}"
    );
    assert_eq!(MAX_DATA_BYTES, 1 << 30);
}

#[cfg(unix)]
#[test]
fn devices_are_refused() {
    let e = io_error(read_regular(Path::new("/dev/null"), MAX_DATA_BYTES));
    assert!(e.ends_with("it is a device, not a regular file"), "{e}");
}

/// Runs `read` on another thread and fails if it has not returned in time
/// (a reader that opened the FIFO would block forever).
fn within_seconds<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the reader blocked on a FIFO")
}

#[test]
fn fifos_are_refused_without_blocking() {
    let dir = scratch("fifo");
    let fifo = dir.join("pipe.csv");
    let _ = std::fs::remove_file(&fifo);
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("skipped: mkfifo is not available");
            return;
        }
    }
    let f = fifo.clone();
    let e = io_error(within_seconds(move || Dataset::from_file(&f, None, None)));
    assert!(e.ends_with("it is a FIFO, not a regular file"), "{e}");
    let f = fifo.clone();
    let e = io_error(within_seconds(move || {
        data::load(&f, &Key::All, usize::MAX)
    }));
    assert!(e.ends_with("it is a FIFO, not a regular file"), "{e}");
    let _ = std::fs::remove_file(&fifo);
}
