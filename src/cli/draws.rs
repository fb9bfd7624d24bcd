//! `ebm summary` and `ebm plot`: commands on a sample file.

use std::path::PathBuf;

use ebm::pipeline;
use ebm::sample::{BatchEnergy, DensityOf, Draws};
use ebm::script::runners;

use super::{Failure, Result, fail, has_ext, parse_vector};

/// The draws of sample files, refusing an empty sample.
fn read_draws(paths: &[PathBuf]) -> Result<Draws> {
    let d = pipeline::read_draws(paths)?;
    if d.chains == 0 || d.draws == 0 {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return fail(format!("{}: no draws", names.join(", ")));
    }
    Ok(d)
}

/// `ebm summary FILE…`: the per-coordinate table of a sample (one file, a
/// CmdStan base name, or CmdStan files, one per chain).
pub fn summary(paths: &[PathBuf], max_coords: usize) -> Result<String> {
    let d = read_draws(paths)?;
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

/// `ebm plot FILE…`: a PNG of a sample, over the energy's density when
/// `--energy-file` and `--energy` name it (the PNG goes beside the first
/// file by default). Returns the line naming the file written.
pub fn plot(paths: &[PathBuf], o: &PlotOptions) -> Result<String> {
    let d = read_draws(paths)?;
    let Some(first) = paths.first() else {
        return fail("no sample file given");
    };
    let out = o.out.clone().unwrap_or_else(|| first.with_extension("png"));
    if !has_ext(&out, &["png"]) {
        return fail(format!(
            "--out expects a file name ending in .png, found `{}`",
            out.display()
        ));
    }
    // A folder (or a folder that refuses new files) is reported now, in the
    // words every output check uses, not as the PNG encoder's OS error.
    ebm::data::atomic::check_writable(&out).map_err(super::Failure::Message)?;
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
