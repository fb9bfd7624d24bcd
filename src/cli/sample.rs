//! `ebm sample`: its flags, read into the `SampleSpec` a script's `sample(..)`
//! statement builds, and run by the same runner.

use std::path::{Path, PathBuf};

use ebm::sample::config::MAX_TREE_DEPTH;
use ebm::sample::io;
use ebm::sample::{
    Init, Method, MetricKind, PtMove, PtOptions, SamplerConfig, UlaOptions, UldOptions,
};
use ebm::script::runners::{self, InitSpec};

use super::{Failure, Result, check_len, dtype_named, fail, has_ext, parse_vector};

/// The flags of `ebm sample`.
#[derive(Clone, Debug, clap::Args)]
pub struct SampleOptions {
    /// The energy to sample.
    #[arg(long)]
    pub energy: String,
    /// ula, mala, rwmh, hmc, nuts (no-U-turn), pt (parallel tempering:
    /// MALA or RWMH replicas on a temperature ladder, swaps between
    /// neighbours; only T = 1 is kept) or uld (underdamped Langevin, BAOAB,
    /// unadjusted).
    #[arg(long, default_value = "mala", value_parser = ["ula", "mala", "rwmh", "hmc", "nuts", "pt", "uld"])]
    pub sampler: String,
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Iterations after warm-up (every --thin-th is kept).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Warm-up iterations (step-size and mass-matrix adaptation for mala/rwmh/hmc;
    /// per-temperature step sizes for pt).
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1)]
    pub thin: usize,
    /// Initial step size (ula/mala: λ; rwmh: proposal sd; hmc: leapfrog ε;
    /// pt: each replica's initial λ, or sd with --replica-move rwmh;
    /// uld: the time step h, fixed).
    #[arg(long)]
    pub step: Option<f64>,
    /// ula only: decoupled noise sd σ (samples at temperature σ²/(2·step)).
    #[arg(long)]
    pub noise: Option<f64>,
    /// hmc only: leapfrog steps per transition.
    #[arg(long)]
    pub leapfrog: Option<usize>,
    /// nuts only: the most doublings of a trajectory (2^D leapfrog steps)
    /// [default: 10].
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// mala, hmc and nuts: the metric (inverse mass matrix) adapted in
    /// warm-up: unit (none), diag or dense [default: diag].
    #[arg(long, value_parser = ["unit", "diag", "dense"])]
    pub metric: Option<String>,
    /// pt only: replicas per chain on a geometric ladder from 1 to --max-temp
    /// [default: 8].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// pt only: the hottest temperature of the geometric ladder [default: 10].
    #[arg(long, allow_hyphen_values = true)]
    pub max_temp: Option<f64>,
    /// pt only: an explicit ladder, increasing from 1 (e.g. 1,2,4,8);
    /// replaces --replicas and --max-temp.
    #[arg(long, allow_hyphen_values = true)]
    pub ladder: Option<String>,
    /// pt only: propose swaps after every N-th transition [default: 1].
    #[arg(long)]
    pub swap_every: Option<usize>,
    /// pt only: each replica's move, mala or rwmh [default: mala].
    #[arg(long, value_parser = ["mala", "rwmh"])]
    pub replica_move: Option<String>,
    /// uld only: friction γ (per unit time) [default: 1].
    #[arg(long, allow_hyphen_values = true)]
    pub friction: Option<f64>,
    /// Target acceptance rate of the warm-up adaptation.
    #[arg(long)]
    pub target: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The conditioning input c of a conditional energy.
    #[arg(long, allow_hyphen_values = true)]
    pub cond: Option<String>,
    /// normal, normal:MEAN,STD, uniform:A,B, or a .csv/.npy file of starting points.
    #[arg(long, default_value = "normal", allow_hyphen_values = true)]
    pub init: String,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
    /// Output file: .csv (Stan-style, with the configuration) or .npy.
    #[arg(long)]
    pub out: PathBuf,
    /// CSV layout: ebm (one file, every chain) or cmdstan (CmdStan's, one
    /// file per chain: --out DIR/NAME.csv writes DIR/NAME_1.csv …).
    #[arg(long, default_value = "ebm", value_parser = ["ebm", "cmdstan"])]
    pub format: String,
    /// Also draw a PNG (a scatter over the density for 2-D energies).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Trained parameters (params.safetensors of `ebm train`, or any
    /// safetensors file keyed by the program's parameter names).
    #[arg(long)]
    pub params: Option<PathBuf>,
}

/// `--init normal|normal:MEAN,STD|uniform:A,B|FILE`.
pub fn init_named(text: &str) -> Result<InitSpec> {
    let (name, args) = match text.split_once(':') {
        Some((n, a)) => (n, Some(parse_vector("--init", a)?)),
        None => (text, None),
    };
    match (name, args.as_deref()) {
        ("normal", None) => Ok(InitSpec::Dist(Init::Normal { mean: 0.0, sd: 1.0 })),
        ("normal", Some(&[mean, sd])) if sd >= 0.0 && sd.is_finite() && mean.is_finite() => {
            Ok(InitSpec::Dist(Init::Normal { mean, sd }))
        }
        ("uniform", Some(&[a, b])) if a < b && a.is_finite() && b.is_finite() => {
            Ok(InitSpec::Dist(Init::Uniform { a, b }))
        }
        ("uniform", None) => Ok(InitSpec::Dist(Init::Uniform { a: -2.0, b: 2.0 })),
        _ if args.is_none() && has_ext(Path::new(text), &["csv", "npy"]) => {
            Ok(InitSpec::File(text.into()))
        }
        _ => fail(format!(
            "--init expects `normal`, `normal:MEAN,STD` (STD ≥ 0), `uniform:A,B` (A < B) or a .csv/.npy file, found `{text}`"
        )),
    }
}

/// The sampler `--sampler` names, with the step-size flags applied.
pub fn sampler_from_flags(o: &SampleOptions) -> Result<SamplerConfig> {
    let Some(mut cfg) = runners::sampler_named(&o.sampler) else {
        return fail(format!(
            "unknown sampler `{}`; expected ula, mala, rwmh, hmc, nuts, pt or uld",
            o.sampler
        ));
    };
    pt_flags(o, &mut cfg)?;
    uld_flags(o, &mut cfg)?;
    if let Some(s) = o.step {
        if !(s > 0.0 && s.is_finite()) {
            return fail(format!("--step must be a number > 0, found {s}"));
        }
        cfg.step = s;
    }
    if let Some(t) = o.target {
        if !(t > 0.0 && t < 1.0 && cfg.method.is_mh()) {
            return fail(format!(
                "--target must be an acceptance rate between 0 and 1 for mala, rwmh, hmc or pt, found {t}"
            ));
        }
        cfg.target_accept = t;
    }
    if let Some(n) = o.noise {
        if !matches!(cfg.method, Method::Ula(_)) {
            return fail("--noise applies to --sampler ula only");
        }
        if !(n >= 0.0 && n.is_finite()) {
            return fail(format!("--noise must be a number ≥ 0, found {n}"));
        }
        cfg.method = Method::Ula(UlaOptions {
            noise: Some(n),
            ..UlaOptions::default()
        });
    }
    if let Some(l) = o.leapfrog {
        if !matches!(cfg.method, Method::Hmc { .. }) {
            return fail("--leapfrog applies to --sampler hmc only");
        }
        if l == 0 {
            return fail("--leapfrog must be at least 1");
        }
        cfg.method = Method::Hmc { leapfrog: l };
    }
    if let Some(d) = o.max_depth {
        if !matches!(cfg.method, Method::Nuts { .. }) {
            return fail("--max-depth applies to --sampler nuts only");
        }
        if !(1..=MAX_TREE_DEPTH).contains(&d) {
            return fail(format!(
                "--max-depth must be between 1 and {MAX_TREE_DEPTH}, found {d}"
            ));
        }
        cfg.method = Method::Nuts { max_depth: d };
    }
    if let Some(m) = &o.metric {
        let takes = matches!(
            cfg.method,
            Method::Mala | Method::Hmc { .. } | Method::Nuts { .. }
        );
        if !takes {
            return fail("--metric applies to --sampler mala, hmc or nuts only");
        }
        let Some(kind) = MetricKind::named(m) else {
            return fail(format!("--metric expects unit, diag or dense, found `{m}`"));
        };
        cfg.metric = kind;
    }
    Ok(cfg)
}

/// `--replicas`, `--max-temp`, `--ladder`, `--swap-every` and
/// `--replica-move`, which only `--sampler pt` takes.
fn pt_flags(o: &SampleOptions, cfg: &mut SamplerConfig) -> Result<()> {
    let given = [
        ("--replicas", o.replicas.is_some()),
        ("--max-temp", o.max_temp.is_some()),
        ("--ladder", o.ladder.is_some()),
        ("--swap-every", o.swap_every.is_some()),
        ("--replica-move", o.replica_move.is_some()),
    ];
    let Method::Pt(pt) = &mut cfg.method else {
        return match given.iter().find(|(_, g)| *g) {
            Some((flag, _)) => fail(format!("{flag} applies to --sampler pt only")),
            None => Ok(()),
        };
    };
    let k = o.replicas.unwrap_or(runners::DEFAULT_REPLICAS);
    if !(2..=ebm::sample::config::MAX_REPLICAS).contains(&k) {
        return fail(format!(
            "--replicas must be between 2 and {}, found {k}",
            ebm::sample::config::MAX_REPLICAS
        ));
    }
    let t_max = o.max_temp.unwrap_or(runners::DEFAULT_MAX_TEMP);
    if !(t_max > 1.0 && t_max.is_finite()) {
        return fail(format!("--max-temp must be a number > 1, found {t_max}"));
    }
    *pt = PtOptions {
        moves: pt.moves,
        swap_every: pt.swap_every,
        ..PtOptions::geometric(k, t_max)
    };
    if let Some(text) = &o.ladder {
        if o.replicas.is_some() || o.max_temp.is_some() {
            return fail("--ladder gives the temperatures itself: drop --replicas and --max-temp");
        }
        pt.ladder = parse_vector("--ladder", text)?;
        if let Some(why) = pt.check() {
            return fail(format!("--ladder: {why} (e.g. --ladder 1,2,4,8)"));
        }
    }
    if let Some(n) = o.swap_every {
        if n == 0 {
            return fail("--swap-every must be at least 1");
        }
        pt.swap_every = n;
    }
    if o.replica_move.as_deref() == Some("rwmh") {
        pt.moves = PtMove::Rwmh;
        cfg.target_accept = 0.234;
        cfg.step = runners::DEFAULT_RWMH_STEP;
    }
    Ok(())
}

/// `--friction`, which only `--sampler uld` takes.
fn uld_flags(o: &SampleOptions, cfg: &mut SamplerConfig) -> Result<()> {
    let Some(g) = o.friction else {
        return Ok(());
    };
    if !matches!(cfg.method, Method::Uld(_)) {
        return fail("--friction applies to --sampler uld only");
    }
    if !(g > 0.0 && g.is_finite()) {
        return fail(format!("--friction must be a number > 0, found {g}"));
    }
    cfg.method = Method::Uld(UldOptions { friction: g });
    Ok(())
}

/// `ebm sample FILE`: runs the chains, writes the draws (and a plot); returns
/// the run summary and the files written.
pub fn sample(path: &Path, o: &SampleOptions) -> Result<String> {
    if o.chains == 0 {
        return fail("--chains must be at least 1");
    }
    if o.steps == 0 {
        return fail("--steps must be at least 1");
    }
    if o.thin == 0 {
        return fail("--thin must be at least 1");
    }
    if !has_ext(&o.out, &["csv", "npy"]) {
        return fail(format!(
            "--out expects a file name ending in .csv or .npy, found `{}`",
            o.out.display()
        ));
    }
    let format = output_format(o)?;
    if let Some(p) = &o.plot
        && !has_ext(p, &["png"])
    {
        return fail(format!(
            "--plot expects a file name ending in .png, found `{}`",
            p.display()
        ));
    }
    let sampler = sampler_from_flags(o)?;
    let init = init_named(&o.init)?;
    let cond = o
        .cond
        .as_deref()
        .map(|c| parse_vector("--cond", c))
        .transpose()?;
    let dtype = dtype_named(&o.dtype)?;
    let (compiled, scale) =
        super::trained_energy_warned(path, &o.energy, o.params.as_deref(), &o.backend, &o.dtype)?;
    let dim: usize = compiled.dim();
    let kept = o.steps.div_ceil(o.thin);
    let values = o.chains.saturating_mul(kept).saturating_mul(dim);
    if values > MAX_STREAMED_VALUES {
        return fail(format!(
            "chains × kept draws × dimension must be at most {MAX_STREAMED_VALUES}, found {values}; use fewer chains or steps, or --thin"
        ));
    }
    match (&cond, compiled.cond_dim()) {
        (None, 0) => {}
        (None, n) => {
            return fail(format!(
                "`{}` is conditional: pass --cond with {n} numbers",
                o.energy
            ));
        }
        (Some(_), 0) => {
            return fail(format!("`{}` is not conditional: remove --cond", o.energy));
        }
        (Some(c), n) => check_len("--cond", c, n)?,
    }
    let mut run = ebm::sample::RunConfig::new(o.chains, o.warmup, o.steps, o.seed);
    run.thin = o.thin;
    run.progress = true;
    // Draws stream to disk as the chains run: memory does not grow with the
    // run's length, only the file does.
    run.stream = Some(ebm::sample::spill::Stream::beside(&o.out));
    if let InitSpec::Dist(d) = &init {
        run.init = d.clone();
    }
    let spec = runners::SampleSpec {
        energy: o.energy.clone(),
        sampler,
        run,
        init,
        cond,
        dtype,
        backend: o.backend.clone(),
        span: Default::default(),
        energy_span: Default::default(),
        init_span: Default::default(),
    };
    // Outputs that cannot be written are refused before the run, not after
    // (every per-chain file of the CmdStan format).
    let outs = match format {
        Some(f) => io::csv_paths(&o.out, o.chains, f).map_err(Failure::Message)?,
        None => vec![o.out.clone()],
    };
    for p in outs.iter().chain(o.plot.as_ref()) {
        ebm::data::atomic::check_writable(p).map_err(Failure::Message)?;
    }
    // The spill files are named after `--out` itself, which a CmdStan
    // run's per-chain files (checked above) are not: its killed spills go now.
    if !outs.contains(&o.out) {
        ebm::data::atomic::remove_stale_temps(&o.out);
    }
    check_disk(&o.out, o.chains * kept, dim, &spec.sampler)?;
    let mut draws = runners::run_sample(&compiled, &spec).map_err(Failure::Message)?;
    if let Some(sc) = &scale {
        // The energy was trained on scaled data: draws go back to the data's scale.
        draws.invert_scale(sc).map_err(Failure::Message)?;
    }
    let mut text = String::new();
    if let Some(s) = &draws.summary {
        text.push_str(&format!("{s}\n"));
    }
    if let Some(device) = compiled.backend().device() {
        text.push_str(&format!("  device: {device}\n"));
    }
    let written = runners::write_draws_as(&o.out, &draws, format.unwrap_or_default())
        .map_err(Failure::Message)?;
    text.push_str(&format!("wrote {}\n", io::describe_files(&written)));
    if let Some(p) = &o.plot {
        let target = ebm::sample::DensityOf::new(&compiled, spec.cond.clone())
            .map_err(|e| Failure::Message(e.to_string()))?;
        let title = runners::default_title(&draws);
        runners::plot_draws(p, &draws, Some(&target), "auto", &title).map_err(Failure::Message)?;
        text.push_str(&format!("wrote {}\n", p.display()));
    }
    Ok(text)
}

/// The most values (chains × kept draws × dimension) one `ebm sample` run
/// stores: its draws stream to disk, so the bound is the disk's (checked by
/// [`check_disk`]); this only stops a mistyped flag (2^36 values is a
/// terabyte of CSV).
const MAX_STREAMED_VALUES: usize = 1 << 36;

/// Refuses a run whose spilled draws and output would not fit the output
/// folder's free space, before it starts rather than when the disk fills.
fn check_disk(
    out: &Path,
    rows: usize,
    dim: usize,
    sampler: &ebm::sample::SamplerConfig,
) -> Result<()> {
    let values = rows * dim;
    let spill = ebm::sample::spill::disk_bytes(rows, dim, sampler.method.is_hamiltonian());
    // Shortest round-trip text of an f64 and its comma: about 20 bytes.
    let file = if has_ext(out, &["npy"]) {
        values as f64 * 8.0
    } else {
        (values + rows * 5) as f64 * 21.0
    };
    let Some(free) = ebm::data::atomic::free_bytes(out) else {
        return Ok(());
    };
    let need = spill + file;
    if need > free as f64 {
        return fail(format!(
            "this run writes about {} ({} of streamed draws, then {} of output), but {} has {} free: use fewer chains or steps, --thin, or another folder",
            ebm::budget::bytes_text(need),
            ebm::budget::bytes_text(spill),
            ebm::budget::bytes_text(file),
            ebm::data::atomic::folder_of(out).display(),
            ebm::budget::bytes_text(free as f64)
        ));
    }
    Ok(())
}

/// The CSV layout `--format` names (`None` for an .npy output, which
/// takes only the default).
fn output_format(o: &SampleOptions) -> Result<Option<io::Format>> {
    let Some(format) = io::Format::named(&o.format) else {
        return fail(format!(
            "unknown --format `{}`; expected ebm or cmdstan",
            o.format
        ));
    };
    if has_ext(&o.out, &["csv"]) {
        return Ok(Some(format));
    }
    if format == io::Format::CmdStan {
        return fail(format!(
            "--format cmdstan writes one .csv file per chain: --out expects DIR/NAME.csv (written as DIR/NAME_1.csv, DIR/NAME_2.csv, …), found `{}`",
            o.out.display()
        ));
    }
    Ok(None)
}

/// Loads trained parameters into `store`; returns the data scaling they were
/// trained under, if any.
pub fn load_trained(
    path: &Path,
    store: &ebm::runtime::ParamStore,
) -> Result<Option<ebm::data::Scaler>> {
    ebm::train::checkpoint::load_params(path, store)
        .map(|l| l.scale)
        .map_err(|e| Failure::Message(e.to_string()))
}
