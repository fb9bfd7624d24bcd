//! Conditional training data: every row's conditioning vector (a concept
//! code) for E(x | c), the one-hot codes of a label column, and how a run
//! groups its negatives by code (the engine samples one code's chains per
//! call) and keeps codes beside the points of its replay buffer.

/// The conditioning vectors of a conditional energy's data rows (`rows ×
/// width`): a one-hot concept code per row, several codes side by side, or
/// any vector the energy's `c` takes. The negatives of a positive with code
/// c are sampled from E(x | c), and the replay buffer keeps each sample's
/// code with it.
#[derive(Clone, Copy, Debug)]
pub struct Concepts<'a> {
    pub of_row: &'a [f64],
    pub width: usize,
}

impl Concepts<'_> {
    pub fn row(&self, r: usize) -> &[f64] {
        &self.of_row[r * self.width..(r + 1) * self.width]
    }
}

/// One-hot codes of `width` values for integer labels 0..width−1, one row
/// per label.
pub fn one_hot_codes(labels: &[i64], width: usize) -> Result<Vec<f64>, String> {
    let mut c = vec![0.0; labels.len() * width];
    for (i, &l) in labels.iter().enumerate() {
        if l < 0 || l as u64 >= width as u64 {
            return Err(format!(
                "row {i} has label {l}, but the energy's `c` takes one-hot codes of {width} values (labels 0..{})",
                width.saturating_sub(1)
            ));
        }
        c[i * width + l as usize] = 1.0;
    }
    Ok(c)
}

/// Rows of `x` (`d` wide) with their codes (`w` wide) appended, as the
/// replay buffer of a conditional run stores them.
pub fn with_codes(x: &[f64], codes: &[f64], d: usize, w: usize) -> Vec<f64> {
    if w == 0 {
        return x.to_vec();
    }
    x.chunks_exact(d)
        .zip(codes.chunks_exact(w))
        .flat_map(|(p, c)| p.iter().chain(c).copied())
        .collect()
}

/// The distinct codes of `cond` (`w` values per row) in order of first
/// appearance, each with the rows that carry it.
pub fn concept_groups(cond: &[f64], w: usize) -> Vec<(Vec<f64>, Vec<usize>)> {
    let mut groups: Vec<(Vec<f64>, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<Vec<u64>, usize> = Default::default();
    for (i, code) in cond.chunks_exact(w).enumerate() {
        let key: Vec<u64> = code.iter().map(|v| v.to_bits()).collect();
        let g = *index.entry(key).or_insert_with(|| {
            groups.push((code.to_vec(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_codes_refuse_labels_out_of_range() {
        assert_eq!(
            one_hot_codes(&[2, 0], 3).unwrap(),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert!(one_hot_codes(&[3], 3).unwrap_err().contains("label 3"));
        assert!(one_hot_codes(&[-1], 3).is_err());
    }

    #[test]
    fn groups_keep_first_appearance_order() {
        let cond = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let g = concept_groups(&cond, 2);
        assert_eq!(
            g,
            vec![(vec![0.0, 1.0], vec![0, 2]), (vec![1.0, 0.0], vec![1])]
        );
        assert_eq!(
            with_codes(&[5.0, 6.0], &[0.0, 1.0, 1.0, 0.0], 1, 2),
            vec![5.0, 0.0, 1.0, 6.0, 1.0, 0.0]
        );
    }
}
