//! `ebm logz`: log Z of a (trained) energy by annealed importance sampling
//! (`ebm::sample::ais`), from a Gaussian fitted to `--data` or a standard
//! normal, and with `--heldout` the held-out NLL = mean E(x) + log Z;
//! `--reverse` runs reverse AIS from the `--data` rows (an upper bound).

use std::path::{Path, PathBuf};

use ebm::sample::ais::{self, AisConfig, AisEstimate, Gaussian, Schedule, Transition};

use super::{Failure, Result, fail};

#[derive(Clone, Debug, clap::Args)]
pub struct LogzOptions {
    /// The energy whose log Z to estimate.
    #[arg(long)]
    pub energy: String,
    /// Trained parameters (params.safetensors of `ebm train`); the training
    /// run's scaling is applied to --data and --heldout.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Rows to fit the base Gaussian to (.csv, .npy or toy:NAME[:ROWS]);
    /// without it the base is a standard normal.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Reverse AIS: start the chains at the --data rows and anneal down to
    /// the base (an upper bound on log Z when the rows are draws of the
    /// model; held-out data of a model that fits approximate that).
    #[arg(long, requires = "data")]
    pub reverse: bool,
    /// Held-out rows: also print the held-out NLL = mean E(x) + log Z.
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// A label column of the data files to leave out.
    #[arg(long)]
    pub label: Option<String>,
    /// Seed of a toy:NAME data set (--heldout draws with this seed + 1).
    #[arg(long, default_value_t = 1_000_003)]
    pub data_seed: u64,
    /// Annealing temperatures N.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Independent AIS runs R (log Z = mean ± sd/√R).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Chains M per run.
    #[arg(long, default_value_t = 128)]
    pub chains: usize,
    /// Sampler transitions at each temperature.
    #[arg(long, default_value_t = 1)]
    pub moves: usize,
    /// The transition at each temperature.
    #[arg(long, default_value = "mala", value_parser = ["mala", "hmc"])]
    pub sampler: String,
    /// hmc: leapfrog steps per transition.
    #[arg(long, default_value_t = 5)]
    pub leapfrog: usize,
    /// The β schedule: sigmoid (δ = 4) or geometric (β₁ = 10⁻⁴).
    #[arg(long, default_value = "sigmoid", value_parser = ["sigmoid", "geometric"])]
    pub schedule: String,
    /// The initial step size in the base's whitened coordinates (adapted
    /// towards the sampler's target acceptance at each temperature).
    #[arg(long, default_value_t = 0.5)]
    pub step: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
    /// One JSON line: {"logz", "se", "runs", ...}.
    #[arg(long)]
    pub json: bool,
}

/// The AIS settings from the flags, checked in the flags' wording.
fn config(o: &LogzOptions) -> Result<AisConfig> {
    if o.steps < 2 {
        return fail(format!("--steps must be at least 2, found {}", o.steps));
    }
    if o.runs < 2 {
        return fail(format!(
            "--runs must be at least 2 (the standard error needs two runs), found {}",
            o.runs
        ));
    }
    if o.chains == 0 || o.moves == 0 {
        return fail("--chains and --moves must be at least 1");
    }
    if o.sampler == "hmc" && o.leapfrog == 0 {
        return fail("--leapfrog must be at least 1");
    }
    if !(o.step > 0.0 && o.step.is_finite()) {
        return fail(format!("--step must be a number > 0, found {}", o.step));
    }
    let mut cfg = AisConfig::new(o.steps, o.runs, o.chains, o.seed);
    cfg.moves = o.moves;
    cfg.step = o.step;
    cfg.threads = ebm::backend::cpu::default_threads();
    cfg.transition = match o.sampler.as_str() {
        "hmc" => Transition::Hmc {
            leapfrog: o.leapfrog,
        },
        _ => Transition::Mala,
    };
    cfg.schedule = match o.schedule.as_str() {
        "geometric" => Schedule::Geometric { beta_min: 1e-4 },
        _ => Schedule::Sigmoid { delta: 4.0 },
    };
    Ok(cfg)
}

/// Rows of a data flag, in the trained scale, checked against the energy.
fn rows(
    flag: &str,
    path: &Path,
    o: &LogzOptions,
    seed: u64,
    dim: usize,
    scale: Option<&ebm::data::Scaler>,
) -> Result<Vec<f64>> {
    let mut data = super::read_dataset(path, o.columns.as_deref(), o.label.as_deref(), seed, 5000)?;
    data.check_width(dim)
        .map_err(|e| Failure::Message(format!("{flag} {}: {e}", path.display())))?;
    if let Some(sc) = scale {
        sc.apply(&mut data.x);
    }
    Ok(data.x)
}

pub fn logz(path: &Path, o: &LogzOptions) -> Result<String> {
    let cfg = config(o)?;
    let (energy, scale) =
        super::trained_energy(path, &o.energy, o.params.as_deref(), &o.backend, &o.dtype)?;
    let d = energy.dim();
    let msg = |e: ebm::runtime::RuntimeError| Failure::Message(e.to_string());
    // Sizes are refused before any file is read or any chain moves.
    cfg.validate(d).map_err(msg)?;
    let (base, data) = match &o.data {
        Some(p) => {
            let x = rows("--data", p, o, o.data_seed, d, scale.as_ref())?;
            let base = Gaussian::fit(&x, d)
                .map_err(|e| Failure::Message(format!("--data {}: {e}", p.display())))?;
            (base, x)
        }
        None => (Gaussian::standard(d), Vec::new()),
    };
    let heldout = match &o.heldout {
        Some(p) => Some(rows(
            "--heldout",
            p,
            o,
            o.data_seed.wrapping_add(1),
            d,
            scale.as_ref(),
        )?),
        None => None,
    };
    let est = if o.reverse {
        ais::ais_reverse_compiled(&energy, &base, &data, &cfg).map_err(msg)?
    } else {
        ais::ais_compiled(&energy, &base, &cfg).map_err(msg)?
    };
    let nll = match &heldout {
        Some(x) => Some(heldout_nll(&energy, x, &est)?),
        None => None,
    };
    Ok(if o.json {
        json(&est, nll)
    } else {
        text(&est, &cfg, nll, o.data.is_some())
    })
}

/// Held-out NLL and its standard error: the log Z SE and the rows' own
/// sampling SE of the mean energy, combined.
#[derive(Clone, Copy, Debug)]
struct Nll {
    nll: f64,
    se: f64,
    rows: usize,
}

fn heldout_nll(energy: &ebm::runtime::CompiledEnergy, x: &[f64], est: &AisEstimate) -> Result<Nll> {
    let n = x.len() / energy.dim().max(1);
    let e = ebm::train::evaluate::energies(energy, x, n)
        .map_err(|e| Failure::Message(e.to_string()))?;
    let Some((nll, se)) = ais::heldout_nll(&e, est) else {
        return fail("--heldout: the energy must be finite at 2 or more held-out rows");
    };
    Ok(Nll { nll, se, rows: n })
}

fn json(est: &AisEstimate, nll: Option<Nll>) -> String {
    let mut s = est.to_json();
    if let Some(n) = nll {
        s.pop();
        s.push_str(&format!(
            ", \"heldout_nll\": {}, \"heldout_nll_se\": {}, \"heldout_rows\": {}}}",
            n.nll, n.se, n.rows
        ));
    }
    s.push('\n');
    s
}

fn text(est: &AisEstimate, cfg: &AisConfig, nll: Option<Nll>, fitted: bool) -> String {
    let m = est.runs.first().map_or(0, |r| r.log_w.len());
    let acc = est.runs.iter().map(|r| r.accept).sum::<f64>() / est.runs.len().max(1) as f64;
    let mut t = format!(
        "log Z = {:.5} ± {:.5}{}\n  {} runs × {} chains, {} temperatures ({}), {} from {} base; acceptance {:.3}\n  pooled over all weights {:.5}; weight ESS {:.1} of {} ({:.1} per run on average)\n  {:.2} s\n",
        est.log_z,
        est.se,
        if est.reverse {
            " (reverse AIS from the --data rows: an upper bound when they are draws of the model)"
        } else {
            ""
        },
        est.runs.len(),
        m,
        cfg.steps,
        cfg.schedule.describe(),
        match cfg.transition {
            Transition::Mala => "mala".to_string(),
            Transition::Hmc { leapfrog } => format!("hmc({leapfrog} leapfrog)"),
        },
        if fitted {
            "a fitted Gaussian"
        } else {
            "a standard normal"
        },
        acc,
        est.log_z_pooled,
        est.ess,
        est.runs.len() * m,
        est.runs.iter().map(|r| r.ess).sum::<f64>() / est.runs.len().max(1) as f64,
        est.elapsed_s
    );
    if let Some(n) = nll {
        t.push_str(&format!(
            "held-out NLL = {:.5} ± {:.5} nats ({} rows)\n",
            n.nll, n.se, n.rows
        ));
    }
    t
}
