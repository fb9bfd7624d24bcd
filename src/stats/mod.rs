//! MCMC diagnostics: rank-normalised split R-hat, bulk and tail ESS
//! (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, computed as ArviZ
//! 0.23 and Stan do), Monte-Carlo standard errors, quantiles and the summary
//! table printed by `ebm summary`; [`eval`] scores trained energies against
//! data (MMD², grid log Z, held-out NLL, KL to the toy sets' densities);
//! [`ksd`] is the kernel Stein discrepancy of a sample against an energy.
//!
//! Every function takes one coordinate as a chain-major slice
//! (`chains × draws`, chain `c`'s draws at `x[c*draws .. (c+1)*draws]`).

// Index loops over chains and coordinates read best as they are.
#![allow(clippy::needless_range_loop)]

use std::fmt::Write as _;

pub mod classify;
pub mod eval;
pub mod ksd;

pub use eval::{
    Grid, GridDensity, GridEnergy, Mmd, grid_density, heldout_nll, kl_data_model,
    known_log_density, median_bandwidth, mmd_noise_floor, mmd2,
};

pub use ksd::{KSD_MAX_ROWS, ksd2_imq, stein_imq};

use crate::sample::Draws;

/// Split every chain into its first and last halves (dropping the middle
/// draw when the length is odd). Returns (values, 2·chains, half).
pub fn split_chains(x: &[f64], chains: usize) -> (Vec<f64>, usize, usize) {
    let n = x.len() / chains.max(1);
    let half = n / 2;
    let mut out = Vec::with_capacity(2 * chains * half);
    for c in 0..chains {
        let ch = &x[c * n..(c + 1) * n];
        out.extend_from_slice(&ch[..half]);
    }
    for c in 0..chains {
        let ch = &x[c * n..(c + 1) * n];
        out.extend_from_slice(&ch[n - half..]);
    }
    // Order does not matter for R-hat/ESS (chains are exchangeable) but we
    // keep ArviZ's order: all first halves, then all second halves.
    (out, 2 * chains, half)
}

/// Average ranks (1-based, ties get their mean rank).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Rank-normalise: Φ⁻¹((rank − 3/8)/(S + 1/4)) (Blom).
pub fn z_scale(x: &[f64]) -> Vec<f64> {
    let s = x.len() as f64;
    ranks(x)
        .into_iter()
        .map(|r| norm_ppf((r - 0.375) / (s + 0.25)))
        .collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn var(x: &[f64], ddof: f64) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - ddof)
}

/// Classic (non-split) R-hat of `chains` equal-length chains.
pub fn rhat_basic(x: &[f64], chains: usize) -> f64 {
    let n = x.len() / chains;
    let means: Vec<f64> = (0..chains).map(|c| mean(&x[c * n..(c + 1) * n])).collect();
    let w = (0..chains)
        .map(|c| var(&x[c * n..(c + 1) * n], 1.0))
        .sum::<f64>()
        / chains as f64;
    let b = n as f64 * var(&means, 1.0);
    // Chains that do not move within themselves: no ratio to take (NaN
    // when they agree too, infinite when they disagree), never the huge
    // number that rounding in w would give.
    if w.is_nan() || w <= f64::EPSILON * b.abs().max(f64::MIN_POSITIVE) {
        return if b > 0.0 { f64::INFINITY } else { f64::NAN };
    }
    let r = ((b / w + n as f64 - 1.0) / n as f64).sqrt();
    if r.is_finite() { r } else { f64::NAN }
}

/// Type-7 (linear interpolation) quantile of sorted data.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

pub fn quantile(x: &[f64], p: f64) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, p)
}

fn valid(x: &[f64], chains: usize, min_chains: usize) -> bool {
    chains >= min_chains && x.len() / chains.max(1) >= 4 && x.iter().all(|v| v.is_finite())
}

/// Rank-normalised split R-hat: max of the bulk and folded (tail) values.
/// NaN for fewer than 2 chains or 4 draws.
pub fn rhat(x: &[f64], chains: usize) -> f64 {
    if !valid(x, chains, 2) {
        return f64::NAN;
    }
    let (s, m, _) = split_chains(x, chains);
    let bulk = rhat_basic(&z_scale(&s), m);
    let med = quantile(&s, 0.5);
    let folded: Vec<f64> = s.iter().map(|v| (v - med).abs()).collect();
    let tail = rhat_basic(&z_scale(&folded), m);
    bulk.max(tail)
}

/// ESS of `chains` equal-length chains (no splitting, no ranking): Geyer's
/// initial monotone sequence over the multi-chain autocorrelation.
pub fn ess_raw(x: &[f64], chains: usize) -> f64 {
    if x.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mn = x.iter().copied().fold(f64::INFINITY, f64::min);
    if mx - mn < 1e-15 {
        return x.len() as f64;
    }
    let n = x.len() / chains;
    let nf = n as f64;
    let centered: Vec<Vec<f64>> = (0..chains)
        .map(|c| {
            let ch = &x[c * n..(c + 1) * n];
            let m = mean(ch);
            ch.iter().map(|v| v - m).collect()
        })
        .collect();
    let means: Vec<f64> = (0..chains).map(|c| mean(&x[c * n..(c + 1) * n])).collect();
    // Mean over chains of the biased autocovariance at lag t.
    let acov = |t: usize| -> f64 {
        centered
            .iter()
            .map(|ch| {
                ch[..n - t]
                    .iter()
                    .zip(&ch[t..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / nf
            })
            .sum::<f64>()
            / chains as f64
    };
    let acov0 = acov(0);
    let mean_var = acov0 * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if chains > 1 {
        var_plus += var(&means, 1.0);
    }
    let rho = |t: usize| 1.0 - (mean_var - acov(t)) / var_plus;
    let mut rho_t = vec![0.0; n];
    let mut even = 1.0;
    rho_t[0] = 1.0;
    let mut odd = rho(1);
    rho_t[1] = odd;
    let mut t = 1;
    while t + 3 < n && even + odd > 0.0 {
        even = rho(t + 1);
        odd = rho(t + 2);
        if even + odd >= 0.0 {
            rho_t[t + 1] = even;
            rho_t[t + 2] = odd;
        }
        t += 2;
    }
    let max_t = t as isize - 2;
    if even > 0.0 && max_t + 1 >= 0 {
        rho_t[(max_t + 1) as usize] = even;
    }
    let mut t = 1isize;
    while t <= max_t - 2 {
        let (a, b) = (t as usize, (t + 1) as usize);
        if rho_t[b] + rho_t[b + 1] > rho_t[a - 1] + rho_t[a] {
            rho_t[b] = (rho_t[a - 1] + rho_t[a]) / 2.0;
            rho_t[b + 1] = rho_t[b];
        }
        t += 2;
    }
    let total = (chains * n) as f64;
    let upto = (max_t + 1).max(0) as usize;
    let mut tau = -1.0 + 2.0 * rho_t[..upto.min(n)].iter().sum::<f64>();
    if upto < n {
        tau += rho_t[upto];
    }
    tau = tau.max(1.0 / total.log10());
    total / tau
}

/// Bulk ESS: ESS of the rank-normalised split chains.
pub fn ess_bulk(x: &[f64], chains: usize) -> f64 {
    if !valid(x, chains, 1) {
        return f64::NAN;
    }
    let (s, m, _) = split_chains(x, chains);
    ess_raw(&z_scale(&s), m)
}

/// ESS of the split chains of an indicator I(x ≤ q_p).
fn ess_quantile(x: &[f64], chains: usize, p: f64) -> f64 {
    let q = quantile(x, p);
    let ind: Vec<f64> = x.iter().map(|v| (*v <= q) as u8 as f64).collect();
    let (s, m, _) = split_chains(&ind, chains);
    ess_raw(&s, m)
}

/// Tail ESS: the smaller ESS of the 5% and 95% quantile indicators.
pub fn ess_tail(x: &[f64], chains: usize) -> f64 {
    if !valid(x, chains, 1) {
        return f64::NAN;
    }
    ess_quantile(x, chains, 0.05).min(ess_quantile(x, chains, 0.95))
}

/// ESS for the mean (split chains, no ranking), as ArviZ `method="mean"`.
pub fn ess_mean(x: &[f64], chains: usize) -> f64 {
    if !valid(x, chains, 1) {
        return f64::NAN;
    }
    let (s, m, _) = split_chains(x, chains);
    ess_raw(&s, m)
}

/// Monte-Carlo standard error of the mean: sd / √ESS_mean.
pub fn mcse_mean(x: &[f64], chains: usize) -> f64 {
    var(x, 1.0).sqrt() / ess_mean(x, chains).sqrt()
}

/// Monte-Carlo standard error of the central second moment (the variance):
/// the MCSE of the mean of (x − x̄)², with that series' own ESS.
pub fn mcse_variance(x: &[f64], chains: usize) -> f64 {
    let m = mean(x);
    let sq: Vec<f64> = x.iter().map(|v| (v - m) * (v - m)).collect();
    mcse_mean(&sq, chains)
}

/// Inverse standard normal CDF (Wichura 1988, algorithm AS 241, PPND16;
/// relative accuracy about 1e-16).
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = ((((((2.509_080_928_730_122_7e3 * r + 3.343_057_558_358_813e4) * r
            + 6.726_577_092_700_87e4)
            * r
            + 4.592_195_393_154_987e4)
            * r
            + 1.373_169_376_550_946e4)
            * r
            + 1.971_590_950_306_551_3e3)
            * r
            + 1.331_416_678_917_843_8e2)
            * r
            + 3.387_132_872_796_366_5;
        let den = ((((((5.226_495_278_852_545e3 * r + 2.872_908_573_572_194_3e4) * r
            + 3.930_789_580_009_271e4)
            * r
            + 2.121_379_430_158_659_7e4)
            * r
            + 5.394_196_021_424_751e3)
            * r
            + 6.871_870_074_920_579e2)
            * r
            + 4.231_333_070_160_091e1)
            * r
            + 1.0;
        return q * num / den;
    }
    let mut r = if q < 0.0 { p } else { 1.0 - p };
    r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        let r = r - 1.6;
        let num = ((((((7.745_450_142_783_414e-4 * r + 2.272_384_498_926_918_4e-2) * r
            + 2.417_807_251_774_506e-1)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_545)
            * r
            + 1.423_437_110_749_683_5;
        let den = ((((((1.050_750_071_644_416_9e-9 * r + 5.475_938_084_995_345e-4) * r
            + 1.519_866_656_361_645_7e-2)
            * r
            + 1.481_039_764_274_800_8e-1)
            * r
            + 6.897_673_349_851e-1)
            * r
            + 1.676_384_830_183_803_8)
            * r
            + 2.053_191_626_637_759)
            * r
            + 1.0;
        num / den
    } else {
        let r = r - 5.0;
        let num = ((((((2.010_334_399_292_288_1e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 1.242_660_947_388_078_4e-3)
            * r
            + 2.653_218_952_657_612_4e-2)
            * r
            + 2.965_605_718_285_048_7e-1)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103;
        let den = ((((((2.044_263_103_389_939_7e-15 * r + 1.421_511_758_316_446e-7) * r
            + 1.846_318_317_510_054_8e-5)
            * r
            + 7.868_691_311_456_133e-4)
            * r
            + 1.487_536_129_085_061_5e-2)
            * r
            + 1.369_298_809_227_358e-1)
            * r
            + 5.998_322_065_558_88e-1)
            * r
            + 1.0;
        num / den
    };
    if q < 0.0 { -val } else { val }
}

/// Per-coordinate summary.
#[derive(Clone, Debug, PartialEq)]
pub struct CoordSummary {
    pub name: String,
    pub mean: f64,
    pub sd: f64,
    pub q5: f64,
    pub q50: f64,
    pub q95: f64,
    pub mcse_mean: f64,
    pub rhat: f64,
    pub ess_bulk: f64,
    pub ess_tail: f64,
}

pub fn summarize_coord(name: &str, x: &[f64], chains: usize) -> CoordSummary {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    CoordSummary {
        name: name.to_string(),
        mean: mean(x),
        sd: var(x, 1.0).sqrt(),
        q5: quantile_sorted(&s, 0.05),
        q50: quantile_sorted(&s, 0.5),
        q95: quantile_sorted(&s, 0.95),
        mcse_mean: mcse_mean(x, chains),
        rhat: rhat(x, chains),
        ess_bulk: ess_bulk(x, chains),
        ess_tail: ess_tail(x, chains),
    }
}

/// The whole summary of a set of draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub chains: usize,
    pub draws: usize,
    pub coords: Vec<CoordSummary>,
    pub energy: CoordSummary,
    pub accept_rate: f64,
    pub divergences: usize,
    pub header: Vec<(String, String)>,
    /// Coordinates beyond `max_coords`, left out of `coords` (the table
    /// says how many).
    pub hidden: usize,
}

/// Summarise `d` (at most `max_coords` coordinates, in order).
pub fn summarize(d: &Draws, max_coords: usize) -> Summary {
    let names = d.coord_names();
    let coords = (0..d.dim.min(max_coords))
        .map(|i| summarize_coord(&names[i], &d.coord(i), d.chains))
        .collect();
    Summary {
        chains: d.chains,
        draws: d.draws,
        coords,
        energy: summarize_coord("energy__", &d.energy, d.chains),
        accept_rate: d.mean_accept(),
        divergences: d.divergence_count(),
        header: d.header.clone(),
        hidden: d.dim.saturating_sub(max_coords),
    }
}

/// A number for the summary table: `NaN`, `inf` and `-inf` as words, very
/// large or small magnitudes in exponent form (at most 10 characters).
fn g(v: f64) -> String {
    if let Some(w) = non_finite(v) {
        return w.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Decimals that show a statistic to the precision its Monte Carlo
/// standard error supports: down to the MCSE's first significant digit and
/// one more (0.9997 ± 4e-6 prints as 0.9996995; 12.3 ± 0.4 as 12.31).
/// `None` when the MCSE is not a positive finite number (one draw per
/// chain, chains that do not move).
fn decimals_for(mcse: f64) -> Option<usize> {
    (mcse.is_finite() && mcse > 0.0).then(|| (1.0 - mcse.log10().floor()).clamp(0.0, 8.0) as usize)
}

/// A statistic at the precision `decimals` allows, or [`g`]'s form when
/// that does not fit the table's 11-character column.
fn at_precision(v: f64, decimals: Option<usize>) -> String {
    match decimals {
        Some(d) if v.is_finite() => {
            let text = format!("{v:.d$}");
            if text.len() <= 11 { text } else { g(v) }
        }
        _ => g(v),
    }
}

/// A Monte Carlo standard error with two significant digits.
fn mcse_text(v: f64) -> String {
    match non_finite(v) {
        Some(w) => w.into(),
        None if v == 0.0 => "0".into(),
        None => format!("{v:.1e}"),
    }
}

fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("inf")
    } else if v == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// R-hat in at most 6 characters: `1.004`, `12.345`, `1.1e15`, `NaN`, `inf`.
fn rhat_text(v: f64) -> String {
    match non_finite(v) {
        Some(w) => w.into(),
        None if v.abs() < 100.0 => format!("{v:.3}"),
        None => format!("{v:.1e}"),
    }
}

/// An effective sample size in at most 8 characters.
fn ess_text(v: f64) -> String {
    match non_finite(v) {
        Some(w) => w.into(),
        None if v.abs() < 1e8 => format!("{v:.0}"),
        None => format!("{v:.2e}"),
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let get = |k: &str| {
            self.header
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        };
        if let Some(s) = get("sampler") {
            write!(f, "sampler {s}")?;
            if let Some(st) = get("step") {
                write!(f, ", step {st}")?;
            }
            if let Some(t) = get("effective_temperature") {
                write!(f, ", effective temperature {t}")?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "{} chains × {} draws; acceptance {}; divergent transitions {}",
            self.chains,
            self.draws,
            if self.accept_rate.is_nan() {
                "n/a".to_string()
            } else {
                g(self.accept_rate)
            },
            self.divergences
        )?;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:>10} {:>11} {:>10} {:>11} {:>11} {:>11} {:>10} {:>6} {:>8} {:>8}",
            "", "mean", "mcse", "sd", "5%", "50%", "95%", "rhat", "ess_bulk", "ess_tail"
        );
        // Files without energies (NPY) have an all-NaN energy column: skip that row.
        let energy = (!self.energy.mean.is_nan()).then_some(&self.energy);
        for c in energy.into_iter().chain(&self.coords) {
            // The mean and the quantiles to the precision the MCSE of the
            // mean supports (the quantiles' own errors are no smaller).
            let d = decimals_for(c.mcse_mean);
            let _ = writeln!(
                t,
                "{:>10} {:>11} {:>10} {:>11} {:>11} {:>11} {:>10} {:>6} {:>8} {:>8}",
                c.name,
                at_precision(c.mean, d),
                mcse_text(c.mcse_mean),
                g(c.sd),
                at_precision(c.q5, d),
                at_precision(c.q50, d),
                at_precision(c.q95, d),
                rhat_text(c.rhat),
                ess_text(c.ess_bulk),
                ess_text(c.ess_tail),
            );
        }
        write!(f, "{t}")?;
        if self.hidden > 0 {
            writeln!(
                f,
                "{:>10} ({} of {} coordinates not shown)",
                "…",
                self.hidden,
                self.coords.len() + self.hidden
            )?;
        }
        let bad: Vec<&str> = self
            .coords
            .iter()
            .filter(|c| c.rhat > 1.01 || (c.rhat.is_nan() && self.chains >= 2 && self.draws >= 4))
            .map(|c| c.name.as_str())
            .collect();
        if !bad.is_empty() {
            writeln!(
                f,
                "warning: R-hat above 1.01 or not a number for {} {}",
                bad.join(", "),
                rhat_why(self.chains, self.draws)
            )?;
        }
        if self.divergences > 0 {
            writeln!(
                f,
                "warning: {} divergent transitions (non-finite energy or large energy error)",
                self.divergences
            )?;
        }
        Ok(())
    }
}

/// Why R-hat may be high, for the warning. Many short chains are the
/// usual way to picture a multimodal target, and there R-hat is high by
/// design: each chain stays in the mode it found.
fn rhat_why(chains: usize, draws: usize) -> String {
    if draws < SHORT_CHAIN && chains >= 4 * draws {
        format!(
            "(with {draws} draws per chain each chain stays near where it settled: on a target with several modes, chains in different modes disagree even when together they cover every mode, so judge the pooled draws; for a mixed sample run fewer, longer chains or parallel tempering, `pt`)"
        )
    } else {
        "(chains disagree or do not move, or draws are not finite; run longer or check the sampler)"
            .into()
    }
}

/// Chains with fewer draws than this are "short" for [`rhat_why`].
const SHORT_CHAIN: usize = 100;

/// The text `ebm summary FILE` prints for a sample CSV.
pub fn summary_file(path: &std::path::Path, max_coords: usize) -> Result<String, String> {
    let d = crate::sample::io::read_csv(path)?;
    Ok(summarize(&d, max_coords).to_string())
}

#[cfg(test)]
mod tests;
