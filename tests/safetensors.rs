//! `data::safetensors` on disk: atomic writes that leave nothing behind on
//! failure, and reads that refuse folders, missing files, pipes and files
//! over the size limit promptly, with the path in every message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ebm::data::DataError;
use ebm::data::safetensors::{
    MAX_TENSOR_FILE_BYTES, Tensor, TensorFile, from_bytes, read, to_bytes, write,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-safetensors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn checkpoint() -> TensorFile {
    TensorFile::new()
        .with_tensor("net.w", Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]))
        .with_tensor("adam.m.net.w", Tensor::f64(vec![2, 2], vec![0.0; 4]))
        .with_tensor("iteration", Tensor::scalar_u64(12))
        .with_metadata("config", "{\"lr\":0.001}")
}

#[test]
fn write_then_read_is_lossless_and_deterministic() {
    let dir = scratch("round");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    write(&a, &checkpoint()).unwrap();
    write(&b, &checkpoint()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(std::fs::read(&a).unwrap(), to_bytes(&checkpoint()).unwrap());
    assert_eq!(read(&a).unwrap(), checkpoint());
    // Overwriting replaces the file; no temporary is left behind.
    let newer = checkpoint().with_tensor("iteration", Tensor::scalar_u64(13));
    write(&a, &newer).unwrap();
    assert_eq!(read(&a).unwrap().get_u64("iteration").unwrap().1, vec![13]);
    assert_eq!(listing(&dir), ["a.safetensors", "b.safetensors"]);
}

#[test]
fn a_failed_write_creates_nothing_and_keeps_the_old_file() {
    let dir = scratch("fail");
    let path = dir.join("params.safetensors");
    let bad = TensorFile::new().with_tensor("W", Tensor::f32(vec![3], vec![1.0]));
    match write(&path, &bad) {
        Err(DataError::Malformed(m)) => assert!(
            m.starts_with(&format!("cannot write {}: tensor `W`", path.display())),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(listing(&dir).is_empty());
    write(&path, &checkpoint()).unwrap();
    assert!(write(&path, &bad).is_err());
    assert_eq!(read(&path).unwrap(), checkpoint());
    assert_eq!(listing(&dir), ["params.safetensors"]);
    // A folder that does not exist is an I/O error, not a panic.
    let missing = dir.join("no/such/folder/params.safetensors");
    assert!(matches!(
        write(&missing, &checkpoint()),
        Err(DataError::Io(_))
    ));
    // Nor can a folder be replaced by a file.
    std::fs::create_dir(dir.join("taken")).unwrap();
    assert!(matches!(
        write(&dir.join("taken"), &checkpoint()),
        Err(DataError::Io(_))
    ));
    assert_eq!(listing(&dir), ["params.safetensors", "taken"]);
}

#[test]
fn unreadable_paths_are_io_errors() {
    let dir = scratch("io");
    let shown = dir.display().to_string();
    assert_eq!(
        read(&dir),
        Err(DataError::Io(format!("{shown} is a folder")))
    );
    let missing = dir.join("missing.safetensors");
    assert_eq!(
        read(&missing),
        Err(DataError::Io(format!("no such file {}", missing.display())))
    );
}

#[test]
fn corrupt_files_name_their_path() {
    let dir = scratch("corrupt");
    let path = dir.join("checkpoint.safetensors");
    let mut bytes = 8_000_000_000u64.to_le_bytes().to_vec();
    bytes.resize(120, 0);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        read(&path),
        Err(DataError::Malformed(format!(
            "{} is not a safetensors file: the header length 8 GB exceeds the file size 120 bytes",
            path.display()
        )))
    );
    let good = to_bytes(&checkpoint()).unwrap();
    std::fs::write(&path, &good[..good.len() - 4]).unwrap();
    match read(&path) {
        Err(DataError::Malformed(m)) => assert!(
            m.starts_with(&format!("{} is truncated: tensor `net.w`", path.display())),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(from_bytes(&good).unwrap(), checkpoint());
}

#[test]
fn files_over_the_limit_are_refused_unread() {
    let dir = scratch("big");
    let path = dir.join("huge.safetensors");
    // Sparse: no disk space is used, and nothing is read.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_TENSOR_FILE_BYTES + 1).unwrap();
    drop(f);
    match read(&path) {
        Err(DataError::Io(m)) => assert!(m.contains("over the 4 GiB limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_pipe_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let path = dir.join("pipe.safetensors");
    match std::process::Command::new("mkfifo").arg(&path).status() {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("mkfifo is not available; skipping");
            return;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || tx.send(read(&p)));
    // Opening a pipe with no writer would block forever.
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO blocked");
    match got {
        Err(DataError::Io(m)) => assert!(m.contains("is not a regular file"), "{m}"),
        other => panic!("{other:?}"),
    }
}
