//! `ebm summary` and `ebm plot`: commands on a sample file.

use std::path::{Path, PathBuf};

use ebm::pipeline;
use ebm::sample::{BatchEnergy, DensityOf, Draws};
use ebm::script::runners;

use super::{Failure, Result, fail, has_ext, parse_vector};

/// The draws of a sample file, refusing an empty one.
fn read_draws(path: &Path) -> Result<Draws> {
    let d = pipeline::read_draws(path)?;
    if d.chains == 0 || d.draws == 0 {
        return fail(format!("{}: no draws", path.display()));
    }
    Ok(d)
}

/// `ebm summary FILE`: the per-coordinate table of a sample file.
pub fn summary(path: &Path, max_coords: usize) -> Result<String> {
    let d = read_draws(path)?;
    Ok(ebm::stats::summarize(&d, max_coords).to_string())
}

/// The flags of `ebm plot`.
#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    pub out: Option<PathBuf>,
    pub energy_file: Option<PathBuf>,
    pub energy: Option<String>,
    pub cond: Option<String>,
    pub kind: String,
    pub title: Option<String>,
}

/// `ebm plot FILE`: a PNG of a sample file, over the energy's density when
/// `--energy-file` and `--energy` name it. Returns the line naming the file
/// written.
pub fn plot(path: &Path, o: &PlotOptions) -> Result<String> {
    let d = read_draws(path)?;
    let out = o.out.clone().unwrap_or_else(|| path.with_extension("png"));
    if !has_ext(&out, &["png"]) {
        return fail(format!(
            "--out expects a file name ending in .png, found `{}`",
            out.display()
        ));
    }
    if !runners::PLOT_KINDS.contains(&o.kind.as_str()) {
        return fail(format!(
            "unknown plot kind `{}`; expected {}",
            o.kind,
            runners::PLOT_KINDS.join(", ")
        ));
    }
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| runners::default_title(&d));
    let compiled = match (&o.energy_file, &o.energy) {
        (Some(f), Some(name)) => Some(super::trained_energy(f, name, None, "cpu", "f64")?.0),
        (None, None) => None,
        _ => return fail("--energy-file and --energy go together"),
    };
    let cond = o
        .cond
        .as_deref()
        .map(|c| parse_vector("--cond", c))
        .transpose()?;
    let target = match &compiled {
        Some(c) => {
            if c.dim() != d.dim {
                return fail(format!(
                    "the energy has {} coordinates but the samples have {}",
                    c.dim(),
                    d.dim
                ));
            }
            Some(
                DensityOf::new(c, cond)
                    .map_err(|e| Failure::Message(format!("{e}; pass --cond")))?,
            )
        }
        None => None,
    };
    let energy = target.as_ref().map(|t| t as &dyn BatchEnergy);
    runners::plot_draws(&out, &d, energy, &o.kind, &title).map_err(Failure::Message)?;
    Ok(format!("wrote {}\n", out.display()))
}
