//! Scores of a classifier's predictions: accuracy, negative log-likelihood,
//! expected calibration error with its reliability bins, and the area under
//! the ROC curve of a score that should separate in-distribution inputs
//! (higher) from out-of-distribution ones.
//!
//! ECE follows Guo et al. 2017 (and the JEM paper): predictions are put in
//! `bins` equal-width confidence bins on [0, 1] (confidence = the largest
//! probability; a confidence of exactly 1 goes to the last bin), and
//! ECE = Σ_bins (n_bin / n)·|accuracy_bin − confidence_bin|.
//! AUROC is the Mann–Whitney statistic P(s_in > s_out) + ½P(s_in = s_out),
//! from ranks with ties averaged, so it is exact for any scores.

/// Row-wise softmax of `logits` (`k` per row), computed stably.
pub fn softmax(logits: &[f64], k: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(k.max(1)) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        p.extend(e.iter().map(|v| v / s));
    }
    p
}

/// Row-wise logsumexp of `logits` (`k` per row).
pub fn logsumexp(logits: &[f64], k: usize) -> Vec<f64> {
    logits
        .chunks_exact(k.max(1))
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        })
        .collect()
}

/// The index of each row's largest entry (the first, on ties).
pub fn argmax(rows: &[f64], k: usize) -> Vec<usize> {
    rows.chunks_exact(k.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                })
                .0
        })
        .collect()
}

/// One reliability bin: the predictions whose confidence fell in
/// [lo, hi), their mean confidence and their accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// NaN for an empty bin.
    pub confidence: f64,
    pub accuracy: f64,
}

/// Accuracy, NLL and calibration of predicted probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub accuracy: f64,
    /// Mean −log p(y | x).
    pub nll: f64,
    pub ece: f64,
    pub bins: Vec<Bin>,
}

/// Scores `probs` (`k` per row, each row summing to 1) against `labels`.
pub fn calibration(probs: &[f64], k: usize, labels: &[usize], bins: usize) -> Calibration {
    let n = labels.len();
    let pred = argmax(probs, k);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins.max(1)];
    let (mut correct, mut nll) = (0usize, 0.0);
    for (i, &y) in labels.iter().enumerate() {
        let row = &probs[i * k..(i + 1) * k];
        let conf = row[pred[i]];
        let hit = pred[i] == y;
        correct += hit as usize;
        nll -= row[y].max(f64::MIN_POSITIVE).ln();
        let b = ((conf * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += conf;
        acc[b].2 += hit as usize;
    }
    let nf = n.max(1) as f64;
    let bins: Vec<Bin> = acc
        .iter()
        .enumerate()
        .map(|(b, &(count, conf, hits))| Bin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count,
            confidence: conf / count as f64,
            accuracy: hits as f64 / count as f64,
        })
        .collect();
    let ece = bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| b.count as f64 / nf * (b.accuracy - b.confidence).abs())
        .sum();
    Calibration {
        accuracy: correct as f64 / nf,
        nll: nll / nf,
        ece,
        bins,
    }
}

/// P(s_in > s_out) + ½·P(s_in = s_out) over all pairs; NaN when either set
/// is empty or a score is NaN.
pub fn auroc(inside: &[f64], outside: &[f64]) -> f64 {
    if inside.is_empty() || outside.is_empty() || inside.iter().chain(outside).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = inside
        .iter()
        .map(|&v| (v, true))
        .chain(outside.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum_in = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_in += rank * all[i..=j].iter().filter(|e| e.1).count() as f64;
        i = j + 1;
    }
    let (m, n) = (inside.len() as f64, outside.len() as f64);
    (rank_sum_in - m * (m + 1.0) / 2.0) / (m * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(inside: &[f64], outside: &[f64], expect: f64) {
        let got = auroc(inside, outside);
        // The pairwise definition, counted directly.
        let mut pairs = 0.0;
        for a in inside {
            for b in outside {
                pairs += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let direct = pairs / (inside.len() * outside.len()) as f64;
        assert!((got - expect).abs() < 1e-12, "{got} vs {expect}");
        assert!((got - direct).abs() < 1e-12, "{got} vs {direct}");
    }

    #[test]
    fn auroc_counts_pairs_with_ties_as_half() {
        check(&[3.0, 4.0], &[1.0, 2.0], 1.0);
        check(&[1.0, 2.0], &[3.0, 4.0], 0.0);
        check(&[1.0, 1.0], &[1.0], 0.5);
        check(&[2.0, 0.5, 3.0], &[1.0, 2.0], 3.5 / 6.0);
        assert!(auroc(&[], &[1.0]).is_nan());
    }

    #[test]
    fn calibration_of_known_predictions() {
        // Three rows, two classes: confident right, confident wrong, unsure right.
        let probs = [0.95, 0.05, 0.9, 0.1, 0.45, 0.55];
        let c = calibration(&probs, 2, &[0, 1, 1], 15);
        assert!((c.accuracy - 2.0 / 3.0).abs() < 1e-15);
        let nll = -(0.95f64.ln() + 0.1f64.ln() + 0.55f64.ln()) / 3.0;
        assert!((c.nll - nll).abs() < 1e-12);
        // Bins: 0.95 → 14 (acc 1), 0.9 → 13 (acc 0), 0.55 → 8 (acc 1).
        let ece = ((1.0 - 0.95) + 0.9 + (1.0 - 0.55)) / 3.0;
        assert!((c.ece - ece).abs() < 1e-12, "{} vs {ece}", c.ece);
        assert_eq!(c.bins.iter().map(|b| b.count).sum::<usize>(), 3);
        assert_eq!(c.bins[14].count, 1);
        assert_eq!(c.bins[13].count, 1);
    }

    #[test]
    fn softmax_and_logsumexp_are_stable() {
        let p = softmax(&[1000.0, 1000.0, -1000.0], 3);
        assert_eq!(p, vec![0.5, 0.5, 0.0]);
        let l = logsumexp(&[1000.0, 1000.0], 2);
        assert!((l[0] - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2, 0.1, 0.0], 3), vec![1, 0]);
    }
}
