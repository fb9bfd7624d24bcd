//! Reference values computed with ArviZ 0.23.4 (numpy 2.4.6, scipy 1.17.1):
//! `az.rhat(a)`, `az.ess(a, method="bulk" | "tail" | "mean")`,
//! `az.mcse(a, method="mean")` on the (chain, draw) arrays built below, and
//! `scipy.special.ndtri(p)` for the inverse normal CDF. The arrays come from
//! the portable SM64 generator of `shared/bench/peers/README.md`
//! (SplitMix64 in counter form, Box–Muller on consecutive pairs), so Python
//! and Rust build the same numbers.

use super::*;

fn sm64(seed: u64, n: usize) -> Vec<u64> {
    (1..=n as u64)
        .map(|i| {
            crate::sample::rng::mix64(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        })
        .collect()
}

fn sm64_normal(seed: u64, n: usize) -> Vec<f64> {
    let u: Vec<f64> = sm64(seed, n + n % 2)
        .into_iter()
        .map(|z| (z >> 11) as f64 * 2f64.powi(-53))
        .collect();
    let mut out = Vec::new();
    for j in (0..u.len()).step_by(2) {
        let r = (-2.0 * (1.0 - u[j]).ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u[j + 1];
        out.push(r * a.cos());
        out.push(r * a.sin());
    }
    out.truncate(n);
    out
}

fn ar(seed: u64, chains: usize, n: usize, phi: f64, shift: f64) -> Vec<f64> {
    let e = sm64_normal(seed, chains * n);
    let mut x = vec![0.0; chains * n];
    for c in 0..chains {
        x[c * n] = e[c * n];
        for t in 1..n {
            x[c * n + t] = phi * x[c * n + t - 1] + e[c * n + t];
        }
        for t in 0..n {
            x[c * n + t] += shift * c as f64;
        }
    }
    x
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn sm64_check_values() {
    assert_eq!(
        sm64(0, 3),
        vec![
            16294208416658607535,
            7960286522194355700,
            487617019471545679
        ]
    );
    let n = sm64_normal(1, 4);
    for (a, b) in n
        .iter()
        .zip([-0.0342673, -1.2926085, -2.5000675, 0.9114666])
    {
        assert!((a - b).abs() < 1e-6);
    }
}

struct Ref {
    rhat: f64,
    bulk: f64,
    tail: f64,
    mean: f64,
    mcse: f64,
}

fn check(name: &str, x: &[f64], chains: usize, r: Ref) {
    let tol = 1e-9;
    let got = [
        rhat(x, chains),
        ess_bulk(x, chains),
        ess_tail(x, chains),
        ess_mean(x, chains),
        mcse_mean(x, chains),
    ];
    let want = [r.rhat, r.bulk, r.tail, r.mean, r.mcse];
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, w, tol),
            "{name}: statistic {k} (rhat, bulk, tail, mean, mcse) = {g}, ArviZ {w}"
        );
    }
}

#[test]
fn matches_arviz_ar1_chains() {
    // A: 4 chains × 100 draws, AR(1) φ = 0.6, chain c shifted by 0.1·c.
    let a = ar(1, 4, 100, 0.6, 0.1);
    assert!((a[0] - -0.034267321791851144).abs() < 1e-15);
    assert!((a[399] - -0.3962465377287139).abs() < 1e-12);
    check(
        "A",
        &a,
        4,
        Ref {
            rhat: 1.0583989934251359,
            bulk: 73.65858368414868,
            tail: 152.87961923291977,
            mean: 70.75313655478742,
            mcse: 0.1433051669211481,
        },
    );
}

#[test]
fn matches_arviz_heavy_tails_odd_length() {
    // B: 3 chains × 51 draws (odd: the middle draw is dropped when
    // splitting), cubes of normals, chain 2 shifted by 0.5.
    let mut b: Vec<f64> = sm64_normal(2, 3 * 51)
        .into_iter()
        .map(|v| v * v * v)
        .collect();
    for v in &mut b[102..] {
        *v += 0.5;
    }
    check(
        "B",
        &b,
        3,
        Ref {
            rhat: 1.0117677573329602,
            bulk: 176.0705776973876,
            tail: 177.34724292101347,
            mean: 198.0777283624411,
            mcse: 0.24160911378268532,
        },
    );
}

#[test]
fn matches_arviz_with_ties() {
    // C: 2 chains × 20 draws of round(3·sin(0.7 i + c))/2 (many ties).
    let c: Vec<f64> = (0..2)
        .flat_map(|c| (0..20).map(move |i| ((i as f64 * 0.7 + c as f64).sin() * 3.0).round() / 2.0))
        .collect();
    check(
        "C",
        &c,
        2,
        Ref {
            rhat: 0.9570278049712836,
            bulk: 18.44244071183801,
            tail: 27.06766917293233,
            mean: 17.98338777961707,
            mcse: 0.2699245536995659,
        },
    );
}

#[test]
fn matches_arviz_slow_mixing() {
    // D: 4 chains × 100 draws, AR(1) φ = 0.95 (long autocorrelation).
    let d = ar(3, 4, 100, 0.95, 0.0);
    check(
        "D",
        &d,
        4,
        Ref {
            rhat: 1.3680404899103678,
            bulk: 10.008013274701312,
            tail: 19.923595541807924,
            mean: 9.825932141176638,
            mcse: 0.7649830113257602,
        },
    );
}

#[test]
fn norm_ppf_matches_scipy() {
    let cases = [
        (1e-300, -37.0470962993612),
        (1e-20, -9.262340089798409),
        (1e-05, -4.264890793922825),
        (0.01, -2.3263478740408408),
        (0.02425, -1.972961051311885),
        (0.1, -1.2815515655446004),
        (0.3, -0.5244005127080409),
        (0.5, 0.0),
        (0.7, 0.5244005127080407),
        (0.93, 1.475791028179171),
        (0.975, 1.959963984540054),
        (0.999, 3.090232306167813),
        (0.999999999999, 7.0344869100478356),
    ];
    for (p, want) in cases {
        let got = norm_ppf(p);
        assert!(
            (got - want).abs() <= 1e-14 * want.abs().max(1.0),
            "ppf({p}) = {got}, scipy {want}"
        );
    }
}

#[test]
fn quantiles_are_type7() {
    let x = [3.0, 1.0, 2.0, 4.0];
    assert_eq!(quantile(&x, 0.5), 2.5);
    assert!((quantile(&x, 0.05) - 1.15).abs() < 1e-12);
    assert_eq!(ranks(&[2.0, 1.0, 2.0]), vec![2.5, 1.0, 2.5]);
}

/// Chains that do not move give R-hat NaN (all agree) or inf (they
/// disagree), never the huge finite number rounding in the within-chain
/// variance would give, and the table prints them as words in its columns.
#[test]
fn rhat_of_chains_that_do_not_move() {
    let same = vec![1.5; 4 * 20];
    assert!(rhat_basic(&same, 4).is_nan());
    let mut apart = vec![0.0; 4 * 20];
    for c in 0..4 {
        apart[c * 20..(c + 1) * 20].fill(c as f64);
    }
    assert_eq!(rhat_basic(&apart, 4), f64::INFINITY);
    // Within-chain spread at the last place of a large offset.
    let tiny: Vec<f64> = (0..80)
        .map(|i| (i / 20) as f64 * 1e3 + if i % 2 == 0 { 0.0 } else { 1e-13 })
        .collect();
    let r = rhat_basic(&tiny, 4);
    assert!(r.is_infinite() || r < 1e15, "{r}");
    assert_eq!(rhat_text(f64::NAN), "NaN");
    assert_eq!(rhat_text(f64::INFINITY), "inf");
    assert_eq!(rhat_text(1.124_740_314_366_333_6e15), "1.1e15");
    assert_eq!(ess_text(f64::NAN), "NaN");
    assert_eq!(g(f64::NAN), "NaN");
    assert_eq!(g(f64::NEG_INFINITY), "-inf");
}

/// The summary table shows a mean to the precision its MCSE supports: the
/// MCSE's first significant digit and one more; without a usable MCSE, or
/// when the digits would not fit the column, the general form.
#[test]
fn means_print_to_the_precision_their_mcse_supports() {
    let cases: &[(f64, f64, &str)] = &[
        (0.99969953, 4e-6, "0.9996995"),
        (12.3456, 0.4, "12.35"),
        (12.3456, 3.0, "12.3"),
        (1234.5, 30.0, "1234"),
        (-0.5, 0.02, "-0.500"),
        (1.25, f64::NAN, "1.2500"),
        (1.25, 0.0, "1.2500"),
        (123456.789, 1e-6, "1.235e5"),
    ];
    for &(v, mcse, want) in cases {
        assert_eq!(at_precision(v, decimals_for(mcse)), want, "{v} ± {mcse}");
    }
    assert_eq!(mcse_text(0.0123), "1.2e-2");
    assert_eq!(mcse_text(f64::NAN), "NaN");
}
