//! The C entry points called from Rust through the rlib: arguments a C
//! caller can get wrong (sizes, lengths, alignment, encodings) come back as
//! errors, never as panics or crashes; a handle is shared by threads that
//! evaluate while another sets parameters, and each evaluation sees one
//! consistent set of values.

mod common;

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::sync::Arc;

use ebm::api::Artifact;
use ebm::backend::DType;
use ebm::backend::cpu::Cpu;
use ebmc::*;

/// A handle owned by a test; freed on drop.
struct Model(*mut EbmModel);

// SAFETY: the library documents (and `model.rs` asserts at compile time)
// that a handle may be used from several threads at once.
unsafe impl Send for Model {}
// SAFETY: as above.
unsafe impl Sync for Model {}

impl Model {
    fn open(path: &std::path::Path) -> Model {
        let path = CString::new(path.to_str().unwrap()).unwrap();
        let mut err = ptr::null_mut();
        // SAFETY: a NUL-terminated path and a writable error pointer.
        let m = unsafe { ebm_model_open(path.as_ptr(), &mut err) };
        assert!(!m.is_null(), "{}", take(err));
        Model(m)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the handle came from `ebm_model_open` and is freed once.
        unsafe { ebm_model_free(self.0) };
    }
}

/// The message of a failed call (and frees it).
fn take(err: *mut c_char) -> String {
    assert!(!err.is_null(), "no error message");
    // SAFETY: a message from the library, NUL-terminated, not yet freed.
    let s = unsafe { CStr::from_ptr(err) }.to_str().unwrap().to_string();
    // SAFETY: freed once, by the function made for it.
    unsafe { ebm_free_error(err) };
    s
}

fn model_file(name: &str) -> (std::path::PathBuf, Model) {
    let dir = common::scratch(name);
    let path = dir.join("model.ebmc");
    common::build_model(common::SOURCE, &path);
    let m = Model::open(&path);
    (path, m)
}

#[test]
fn wrong_parameter_lengths_are_errors_and_change_nothing() {
    let (_, m) = model_file("param-lengths");
    let mut err = ptr::null_mut();
    let mut w = [0.0f64; 4];
    // SAFETY: `w` holds 4 values; names are NUL-terminated.
    let rc = unsafe { ebm_model_get_param(m.0, c"W".as_ptr(), w.as_mut_ptr(), 4, &mut err) };
    assert_eq!(rc, EBM_OK);
    for n in [0usize, 3, 5, usize::MAX] {
        let mut big = vec![1.0f64; 8];
        // SAFETY: the length is refused before anything is read or written.
        let rc = unsafe { ebm_model_set_param(m.0, c"W".as_ptr(), big.as_ptr(), n, &mut err) };
        assert_eq!(rc, EBM_ERROR);
        assert_eq!(take(err), format!("parameter `W` has 4 values; n is {n}"));
        // SAFETY: as above.
        let rc = unsafe { ebm_model_get_param(m.0, c"W".as_ptr(), big.as_mut_ptr(), n, &mut err) };
        assert_eq!(rc, EBM_ERROR);
        assert!(take(err).contains("has 4 values"));
        assert!(big.iter().all(|&v| v == 1.0), "nothing was written");
    }
    let mut again = [0.0f64; 4];
    // SAFETY: `again` holds 4 values.
    let rc = unsafe { ebm_model_get_param(m.0, c"W".as_ptr(), again.as_mut_ptr(), 4, &mut err) };
    assert_eq!(rc, EBM_OK);
    assert_eq!(again, w, "refused updates left W alone");
    // SAFETY: names are NUL-terminated.
    unsafe {
        assert_eq!(ebm_model_param_size(m.0, c"W".as_ptr()), 4);
        assert_eq!(ebm_model_param_size(m.0, c"f.mlp0.w2".as_ptr()), 12);
        assert_eq!(ebm_model_param_size(m.0, c"nope".as_ptr()), -1);
        assert_eq!(ebm_model_param_size(m.0, ptr::null()), -1);
    }
}

#[test]
fn misaligned_overflowing_and_non_utf8_arguments_are_errors() {
    let (_, m) = model_file("bad-args");
    let mut err = ptr::null_mut();
    let x = [0.5f64; 11];
    let mut e = [0.0f64; 5];
    // One byte past an f64: misaligned for f64.
    let skewed = (x.as_ptr() as *const u8).wrapping_add(1) as *const f64;
    // SAFETY: the pointer is refused (misaligned) before it is read.
    let rc = unsafe {
        ebm_energy_f64(
            m.0,
            c"quad".as_ptr(),
            skewed,
            ptr::null(),
            5,
            e.as_mut_ptr(),
            &mut err,
        )
    };
    assert_eq!(rc, EBM_ERROR);
    assert_eq!(take(err), "x is not aligned for f64");
    // A batch whose size overflows, in both dtypes and every function.
    let xf = [0.5f32; 10];
    let mut ef = [0.0f32; 5];
    for batch in [usize::MAX, usize::MAX / 2 + 1] {
        // One message pointer per call.
        let mut errs = [ptr::null_mut(); 4];
        // SAFETY: the size is refused before any pointer is read.
        let codes = unsafe {
            [
                ebm_energy_f64(
                    m.0,
                    c"quad".as_ptr(),
                    x.as_ptr(),
                    ptr::null(),
                    batch,
                    e.as_mut_ptr(),
                    &mut errs[0],
                ),
                ebm_energy_f32(
                    m.0,
                    c"quad".as_ptr(),
                    xf.as_ptr(),
                    ptr::null(),
                    batch,
                    ef.as_mut_ptr(),
                    &mut errs[1],
                ),
                ebm_grad_f32(
                    m.0,
                    c"quad".as_ptr(),
                    xf.as_ptr(),
                    ptr::null(),
                    batch,
                    ptr::null_mut(),
                    ef.as_mut_ptr(),
                    &mut errs[2],
                ),
                ebm_hvp_f64(
                    m.0,
                    c"quad".as_ptr(),
                    x.as_ptr(),
                    ptr::null(),
                    batch,
                    x.as_ptr(),
                    e.as_mut_ptr(),
                    &mut errs[3],
                ),
            ]
        };
        for (rc, err) in codes.into_iter().zip(errs) {
            assert_eq!(rc, EBM_ERROR);
            assert!(take(err).contains("too large"));
        }
    }
    // Sizes that fit usize but not an allocation.
    let batch = (isize::MAX as usize) / 2;
    // SAFETY: refused before any pointer is read.
    let rc = unsafe {
        ebm_energy_f64(
            m.0,
            c"quad".as_ptr(),
            x.as_ptr(),
            ptr::null(),
            batch,
            e.as_mut_ptr(),
            &mut err,
        )
    };
    assert_eq!(rc, EBM_ERROR);
    assert!(take(err).contains("too many"));
    // A name that is not UTF-8.
    let latin1 = [b'q', 0xe9, 0];
    // SAFETY: a NUL-terminated byte string.
    let rc = unsafe {
        ebm_energy_f64(
            m.0,
            latin1.as_ptr() as *const c_char,
            x.as_ptr(),
            ptr::null(),
            5,
            e.as_mut_ptr(),
            &mut err,
        )
    };
    assert_eq!(rc, EBM_ERROR);
    assert!(take(err).contains("not UTF-8"));
    // SAFETY: as above; -1 for a name that is not UTF-8.
    assert_eq!(
        unsafe { ebm_model_dim(m.0, latin1.as_ptr() as *const c_char) },
        -1
    );
}

#[test]
fn listing_a_model_file_without_parameters() {
    let dir = common::scratch("listing");
    let path = dir.join("banana.ebmc");
    common::build_example("banana.ebm", &["banana"], &path);
    let m = Model::open(&path);
    // SAFETY: a live handle; returned names are NUL-terminated and live
    // as long as it.
    unsafe {
        assert_eq!(ebm_model_num_defs(m.0), 1);
        assert_eq!(CStr::from_ptr(ebm_model_def_name(m.0, 0)), c"banana");
        assert_eq!(ebm_model_def_kind(m.0, 0), EBM_KIND_ENERGY);
        assert_eq!(ebm_model_dim(m.0, c"banana".as_ptr()), 2);
        assert_eq!(ebm_model_cond_dim(m.0, c"banana".as_ptr()), 0);
        assert_eq!(ebm_model_num_params(m.0), 0);
        assert!(ebm_model_param_name(m.0, 0).is_null());
        let mut err = ptr::null_mut();
        let mut out = [0.0f64; 1];
        let rc = ebm_model_get_param(m.0, c"W".as_ptr(), out.as_mut_ptr(), 1, &mut err);
        assert_eq!(rc, EBM_ERROR);
        assert_eq!(
            take(err),
            "no parameter `W` in this model file; it has no parameters"
        );
        let version = CStr::from_ptr(ebm_version()).to_str().unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert_eq!(ebm_format_version(), ebm::artifact::FORMAT_VERSION);
    }
}

#[test]
fn threads_share_a_handle_while_parameters_change() {
    let (path, m) = model_file("threads");
    // The two parameter sets the writer alternates between, and what the
    // energy is under each (from the Rust API, in f64 and f32).
    let w_a = [0.25, -0.5, 0.125, 1.0];
    let w_b = [1.5, 0.25, -0.75, 0.5];
    let batch = 64;
    let x: Vec<f64> = (0..2 * batch).map(|i| (i % 9) as f64 * 0.2 - 0.7).collect();
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let art = Artifact::load(&path).unwrap();
    let cpu = Arc::new(Cpu::new());
    let e64 = art.energy_with("quad", cpu.clone(), DType::F64).unwrap();
    let e32 = art.energy_with("quad", cpu, DType::F32).unwrap();
    let expected = |w: &[f64]| {
        art.params().set("W", w).unwrap();
        let g = e64.energy_and_grad_x(&x, None, batch).unwrap();
        let g32 = e32.energy_and_grad_x(&xf, None, batch).unwrap();
        (g, g32)
    };
    let (a, a32) = expected(&w_a);
    let (b, b32) = expected(&w_b);
    assert_ne!(a.energy, b.energy);

    // The handle starts at the first parameter set: a reader that runs
    // before the writer's first call must see one of the two sets too (it
    // would otherwise see the file's own values and fail at random).
    let mut err = ptr::null_mut();
    // SAFETY: a live handle; `w_a` holds 4 values.
    let rc = unsafe { ebm_model_set_param(m.0, c"W".as_ptr(), w_a.as_ptr(), 4, &mut err) };
    assert_eq!(rc, EBM_OK);
    std::thread::scope(|s| {
        let m = &m;
        let writer = s.spawn(move || {
            let mut err = ptr::null_mut();
            for i in 0..200 {
                let w = if i % 2 == 0 { &w_a } else { &w_b };
                // SAFETY: a live handle shared across threads; `w` holds 4 values.
                let rc =
                    unsafe { ebm_model_set_param(m.0, c"W".as_ptr(), w.as_ptr(), 4, &mut err) };
                assert_eq!(rc, EBM_OK);
                std::thread::yield_now();
            }
        });
        let readers: Vec<_> = (0..3)
            .map(|t| {
                let (x, xf, a, b, a32, b32) = (&x, &xf, &a, &b, &a32, &b32);
                s.spawn(move || {
                    let mut err = ptr::null_mut();
                    let (mut e, mut g) = (vec![0.0; batch], vec![0.0; 2 * batch]);
                    let (mut ef, mut gf) = (vec![0.0f32; batch], vec![0.0f32; 2 * batch]);
                    for _ in 0..60 {
                        if t == 2 {
                            // SAFETY: every array holds the documented length.
                            let rc = unsafe {
                                ebm_grad_f32(
                                    m.0,
                                    c"quad".as_ptr(),
                                    xf.as_ptr(),
                                    ptr::null(),
                                    batch,
                                    ef.as_mut_ptr(),
                                    gf.as_mut_ptr(),
                                    &mut err,
                                )
                            };
                            assert_eq!(rc, EBM_OK);
                            let seen = (ef.as_slice(), gf.as_slice());
                            assert!(
                                seen == (&a32.energy[..], &a32.grad_x[..])
                                    || seen == (&b32.energy[..], &b32.grad_x[..]),
                                "an f32 evaluation mixed two parameter sets"
                            );
                        } else {
                            // SAFETY: every array holds the documented length.
                            let rc = unsafe {
                                ebm_grad_f64(
                                    m.0,
                                    c"quad".as_ptr(),
                                    x.as_ptr(),
                                    ptr::null(),
                                    batch,
                                    e.as_mut_ptr(),
                                    g.as_mut_ptr(),
                                    &mut err,
                                )
                            };
                            assert_eq!(rc, EBM_OK);
                            let seen = (e.as_slice(), g.as_slice());
                            assert!(
                                seen == (&a.energy[..], &a.grad_x[..])
                                    || seen == (&b.energy[..], &b.grad_x[..]),
                                "an f64 evaluation mixed two parameter sets"
                            );
                        }
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    });
}

#[test]
fn evaluations_match_across_dtypes_and_a_batch_of_one() {
    let (_, m) = model_file("dtypes");
    let mut err = ptr::null_mut();
    let x = [0.3, -0.2, 1.1, 0.4, -0.9, 0.0];
    let v = [1.0, 0.0, 0.0, 1.0, 0.5, -0.5];
    let (mut e, mut g, mut h) = ([0.0; 3], [0.0; 6], [0.0; 6]);
    // SAFETY: every array holds the documented length.
    unsafe {
        assert_eq!(
            ebm_grad_f64(
                m.0,
                c"quad".as_ptr(),
                x.as_ptr(),
                ptr::null(),
                3,
                e.as_mut_ptr(),
                g.as_mut_ptr(),
                &mut err
            ),
            EBM_OK
        );
        assert_eq!(
            ebm_hvp_f64(
                m.0,
                c"quad".as_ptr(),
                x.as_ptr(),
                ptr::null(),
                3,
                v.as_ptr(),
                h.as_mut_ptr(),
                &mut err
            ),
            EBM_OK
        );
    }
    // Point by point: the same values as in the batch (within rounding).
    for b in 0..3 {
        let (mut e1, mut g1, mut h1) = ([0.0; 1], [0.0; 2], [0.0; 2]);
        // SAFETY: every array holds the documented length.
        unsafe {
            assert_eq!(
                ebm_grad_f64(
                    m.0,
                    c"quad".as_ptr(),
                    x[2 * b..].as_ptr(),
                    ptr::null(),
                    1,
                    e1.as_mut_ptr(),
                    g1.as_mut_ptr(),
                    &mut err
                ),
                EBM_OK
            );
            assert_eq!(
                ebm_hvp_f64(
                    m.0,
                    c"quad".as_ptr(),
                    x[2 * b..].as_ptr(),
                    ptr::null(),
                    1,
                    v[2 * b..].as_ptr(),
                    h1.as_mut_ptr(),
                    &mut err
                ),
                EBM_OK
            );
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        assert!(close(e1[0], e[b]));
        for k in 0..2 {
            assert!(close(g1[k], g[2 * b + k]) && close(h1[k], h[2 * b + k]));
        }
    }
    // f32 near f64.
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let vf: Vec<f32> = v.iter().map(|&v| v as f32).collect();
    let (mut ef, mut hf) = ([0.0f32; 3], [0.0f32; 6]);
    // SAFETY: every array holds the documented length.
    unsafe {
        assert_eq!(
            ebm_energy_f32(
                m.0,
                c"quad".as_ptr(),
                xf.as_ptr(),
                ptr::null(),
                3,
                ef.as_mut_ptr(),
                &mut err
            ),
            EBM_OK
        );
        assert_eq!(
            ebm_hvp_f32(
                m.0,
                c"quad".as_ptr(),
                xf.as_ptr(),
                ptr::null(),
                3,
                vf.as_ptr(),
                hf.as_mut_ptr(),
                &mut err
            ),
            EBM_OK
        );
    }
    for (a, b) in ef.iter().zip(&e).chain(hf.iter().zip(&h)) {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
}
