//! `include/ebm.h` is what cbindgen makes of the sources today: this test
//! regenerates it (config `cbindgen.toml`) and compares. `EBM_BLESS=1`
//! rewrites the committed header instead of failing.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen cannot generate the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = dir.join("include/ebm.h");
    if std::env::var_os("EBM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("cannot write include/ebm.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "capi/include/ebm.h is out of date with capi/src: rerun this test with \
         EBM_BLESS=1 (EBM_BLESS=1 cargo test --release -p ebm-capi --test header) and commit the header"
    );
}
