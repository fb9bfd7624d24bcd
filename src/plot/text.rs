//! Plots in the terminal, for the REPL: a scatter in braille characters
//! (2 × 4 dots per character), a histogram of block characters, and the
//! density exp(−E) of a 1-D or 2-D energy. Non-finite values are left out
//! and counted; an empty or single-valued range is widened, so any input
//! gives a picture and never a hang.

/// Bit of the braille dot at (column 0..2, row 0..4) within a character.
const DOT: [[u32; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
/// Eight heights of a bar, lowest first.
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Density shades, lightest first.
const SHADES: [char; 10] = [' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'];

/// Energies of points given row-major (one per point), or why not.
pub type EnergyFn<'a> = &'a dyn Fn(&[f64]) -> Result<Vec<f64>, String>;

/// `(lo, hi)` of the finite values, widened when empty or a single value.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        (-1.0, 1.0)
    } else if hi - lo <= f64::EPSILON * lo.abs().max(1.0) || !(hi - lo).is_finite() {
        let pad = lo.abs().clamp(1.0, f64::MAX / 4.0);
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    }
}

/// The cell (0..n) of `v` on `[lo, hi]`.
fn cell(v: f64, lo: f64, hi: f64, n: usize) -> usize {
    let t = (v - lo) / (hi - lo);
    ((t * n as f64) as usize).min(n - 1)
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Rows of text framed with y labels on the left and x labels below.
fn frame(rows: &[String], x: (f64, f64), y: (f64, f64), width: usize) -> String {
    let (top, bottom) = (label(y.1), label(y.0));
    let gutter = top.chars().count().max(bottom.chars().count());
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let l = match i {
            0 => top.clone(),
            _ if i + 1 == rows.len() => bottom.clone(),
            _ => String::new(),
        };
        out.push_str(&format!("{l:>gutter$} │{row}\n"));
    }
    let (left, right) = (label(x.0), label(x.1));
    let gap = (width + 1).saturating_sub(left.chars().count() + right.chars().count());
    out.push_str(&format!("{:gutter$} └{}\n", "", "─".repeat(width)));
    out.push_str(&format!(
        "{:gutter$}  {left}{}{right}\n",
        "",
        " ".repeat(gap.max(1))
    ));
    out
}

fn skipped(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!("({n} non-finite values left out)\n"),
    }
}

/// A scatter of `points` in a `width` × `height` character grid.
pub fn scatter(points: &[(f64, f64)], width: usize, height: usize) -> String {
    let (width, height) = (width.max(2), height.max(2));
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let x = range(finite.iter().map(|p| p.0));
    let y = range(finite.iter().map(|p| p.1));
    let mut bits = vec![0u32; width * height];
    for &(a, b) in &finite {
        let (cx, cy) = (cell(a, x.0, x.1, width * 2), cell(b, y.0, y.1, height * 4));
        // Row 0 is the top of the picture.
        let ry = height * 4 - 1 - cy;
        bits[(ry / 4) * width + cx / 2] |= DOT[cx % 2][ry % 4];
    }
    let rows: Vec<String> = bits
        .chunks(width)
        .map(|r| {
            r.iter()
                .map(|&b| char::from_u32(0x2800 + b).unwrap_or(' '))
                .collect()
        })
        .collect();
    let mut out = frame(&rows, x, y, width);
    out.push_str(&skipped(points.len() - finite.len()));
    out
}

/// Vertical bars of `heights` (≥ 0), `height` characters tall.
fn bars(heights: &[f64], height: usize) -> Vec<String> {
    let top = heights.iter().copied().fold(0.0, f64::max);
    let levels = height * 8;
    let scaled: Vec<usize> = heights
        .iter()
        .map(|&v| match top > 0.0 {
            true => ((v / top) * levels as f64).round() as usize,
            false => 0,
        })
        .collect();
    (0..height)
        .map(|row| {
            let floor = (height - 1 - row) * 8;
            scaled
                .iter()
                .map(|&s| match s.saturating_sub(floor) {
                    0 => ' ',
                    k => BLOCKS[k.min(8) - 1],
                })
                .collect()
        })
        .collect()
}

/// A histogram of `values` with `width` bins, `height` characters tall.
pub fn histogram(values: &[f64], width: usize, height: usize) -> String {
    let (width, height) = (width.max(2), height.max(1));
    let x = range(values.iter().copied());
    let mut counts = vec![0.0; width];
    let mut finite = 0;
    for &v in values.iter().filter(|v| v.is_finite()) {
        counts[cell(v, x.0, x.1, width)] += 1.0;
        finite += 1;
    }
    let top = counts.iter().copied().fold(0.0, f64::max);
    let mut out = frame(&bars(&counts, height), x, (0.0, top), width);
    out.push_str(&skipped(values.len() - finite));
    out
}

/// The density exp(−E) of a `dim`-dimensional energy (1 or 2) over
/// `[lo, hi]` per axis; `energy` maps points (row-major) to energies.
pub fn density(
    dim: usize,
    (lo, hi): (f64, f64),
    width: usize,
    height: usize,
    energy: EnergyFn,
) -> Result<String, String> {
    let (width, height) = (width.max(2), height.max(2));
    let at = |i: usize, n: usize| lo + (hi - lo) * (i as f64 + 0.5) / n as f64;
    let (points, n): (Vec<f64>, usize) = match dim {
        1 => ((0..width).map(|i| at(i, width)).collect(), width),
        2 => {
            let mut p = Vec::with_capacity(width * height * 2);
            for r in 0..height {
                for c in 0..width {
                    p.extend([at(c, width), at(height - 1 - r, height)]);
                }
            }
            (p, width * height)
        }
        d => {
            return Err(format!(
                "a terminal density needs 1 or 2 coordinates, not {d}"
            ));
        }
    };
    let e = energy(&points)?;
    let min = e
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let p: Vec<f64> = e
        .iter()
        .map(|&v| if v.is_finite() { (min - v).exp() } else { 0.0 })
        .collect();
    debug_assert_eq!(p.len(), n);
    let rows = match dim {
        1 => bars(&p, height),
        _ => p
            .chunks(width)
            .map(|r| {
                r.iter()
                    .map(|&v| {
                        SHADES[((v * (SHADES.len() - 1) as f64).round() as usize)
                            .min(SHADES.len() - 1)]
                    })
                    .collect()
            })
            .collect(),
    };
    let y = if dim == 1 { (0.0, 1.0) } else { (lo, hi) };
    let mut out = frame(&rows, (lo, hi), y, width);
    out.push_str(match dim {
        1 => "exp(−E), scaled to its peak\n",
        _ => "exp(−E), scaled to its peak (darker is more probable)\n",
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_marks_corners_and_skips_non_finite() {
        let t = scatter(&[(0.0, 0.0), (1.0, 1.0), (f64::NAN, 0.0)], 4, 2);
        let rows: Vec<&str> = t.lines().collect();
        // Top-right dot (x max, y max) and bottom-left dot (x min, y min).
        assert!(rows[0].ends_with('⢀') || rows[0].ends_with('⠈'), "{t}");
        assert!(rows[1].contains('⡀'), "{t}");
        assert!(t.contains("1 non-finite values left out"), "{t}");
    }

    #[test]
    fn extreme_and_constant_ranges_still_plot() {
        for pts in [
            vec![(1e308, -1e308), (-1e308, 1e308)],
            vec![(2.0, 2.0); 3],
            vec![],
        ] {
            let t = scatter(&pts, 10, 3);
            assert_eq!(t.lines().count(), 5, "{t}");
        }
        let h = histogram(&[f64::INFINITY, 1e300, -1e300], 10, 3);
        assert!(h.contains("1 non-finite"), "{h}");
    }

    #[test]
    fn histogram_bar_heights_follow_counts() {
        let h = histogram(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0], 2, 1);
        let bar = h.lines().next().unwrap();
        assert!(bar.ends_with("█▄"), "{h}");
    }

    #[test]
    fn density_of_a_gaussian_peaks_in_the_middle() {
        let e = |p: &[f64]| Ok(p.iter().map(|x| x * x / 2.0).collect());
        let t = density(1, (-3.0, 3.0), 7, 2, &e).unwrap();
        let top = t.lines().next().unwrap();
        assert!(top.ends_with("  ▃█▃  "), "{t}");
        let e2 = |p: &[f64]| {
            Ok(p.chunks(2)
                .map(|q| (q[0] * q[0] + q[1] * q[1]) / 2.0)
                .collect())
        };
        let t2 = density(2, (-3.0, 3.0), 3, 3, &e2).unwrap();
        assert!(t2.lines().nth(1).unwrap().contains('@'), "{t2}");
        assert!(density(3, (-1.0, 1.0), 3, 3, &e).is_err());
    }
}
