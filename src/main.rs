//! The `ebm` command line: a thin layer over `ebm::driver`; it parses
//! arguments, calls one driver function and prints what comes back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ebm::driver::{self, SourceFile};

#[derive(Parser)]
#[command(
    name = "ebm",
    version,
    about = "A language and compiler for energy-based models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a program; exit 0 when valid, print diagnostics and exit 1 otherwise.
    Check { file: PathBuf },
    /// Run a script's statements (`print(...)`, ...).
    Run { file: PathBuf },
    /// Evaluate an energy (and its gradient, a Hessian-vector product) at one point.
    Eval {
        file: PathBuf,
        /// The energy to evaluate.
        #[arg(long)]
        energy: String,
        /// The point x, comma-separated, row-major: "x0,x1,...".
        #[arg(long, allow_hyphen_values = true)]
        at: String,
        /// The conditioning input c of a conditional energy.
        #[arg(long, allow_hyphen_values = true)]
        cond: Option<String>,
        /// Also print ∇ₓE.
        #[arg(long)]
        grad: bool,
        /// Also print the Hessian-vector product ∇ₓ(∇ₓE·v) for this v.
        #[arg(long, allow_hyphen_values = true)]
        hvp: Option<String>,
        #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
        dtype: String,
        #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu"])]
        backend: String,
        /// One JSON line: {"energy": e, "grad": [...], "hvp": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Sample an energy with Langevin, MALA, random-walk MH or HMC; write the draws as CSV or NPY.
    Sample {
        file: PathBuf,
        #[command(flatten)]
        options: driver::SampleOptions,
    },
    /// Summarise a sample file: mean, sd, quantiles, split R-hat, bulk and tail ESS.
    Summary {
        file: PathBuf,
        /// Show at most this many coordinates.
        #[arg(long, default_value_t = 20)]
        max: usize,
    },
    /// Plot a sample file as a PNG (over an energy's density with --energy-file and --energy).
    Plot {
        file: PathBuf,
        /// The PNG to write (default: FILE with extension .png).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A program that defines the energy drawn as the background.
        #[arg(long)]
        energy_file: Option<PathBuf>,
        #[arg(long)]
        energy: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        cond: Option<String>,
        #[arg(long, default_value = "auto", value_parser = ["auto", "scatter", "hist", "trace"])]
        kind: String,
        #[arg(long)]
        title: Option<String>,
    },
    /// Print a compiler stage: ast, ir, grad (after AD), opt (simplified), clif (Cranelift IR).
    Dump {
        file: PathBuf,
        #[arg(long, value_parser = ["ast", "ir", "grad", "opt", "clif"])]
        stage: String,
        /// Only this definition (default: all of them).
        #[arg(long)]
        energy: Option<String>,
        /// The derivative kernel shown by grad/opt/clif.
        #[arg(long, default_value = "grad", value_parser = ["energy", "grad", "params", "hvp", "mixed", "all"])]
        kernel: String,
        #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
        dtype: String,
    },
    /// Time the peer benchmark workloads (shared/bench/peers) and print JSON lines.
    Bench {
        /// Comma-separated workloads, or `all`: gmm2d_ula, gauss100_ula, mlp_ula.
        #[arg(long, default_value = "all")]
        workload: String,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Worker threads (default: the machine's cores, or EBM_THREADS).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Check { file } => read(&file).and_then(|f| driver::check(&f)),
        Command::Run { file } => read(&file).and_then(|f| driver::run(&f, &mut std::io::stdout())),
        Command::Eval {
            file,
            energy,
            at,
            cond,
            grad,
            hvp,
            dtype,
            backend,
            json,
        } => eval(&file, &energy, &at, cond, grad, hvp, &dtype, &backend, json),
        Command::Sample { file, options } => {
            read(&file).and_then(|f| show(driver::sample(&f, &options)))
        }
        Command::Summary { file, max } => show(driver::summary(&file, max)),
        Command::Plot {
            file,
            out,
            energy_file,
            energy,
            cond,
            kind,
            title,
        } => {
            let options = driver::PlotOptions {
                out,
                energy_file,
                energy,
                cond,
                kind,
                title,
            };
            show(driver::plot(&file, &options))
        }
        Command::Dump {
            file,
            stage,
            energy,
            kernel,
            dtype,
        } => dump(&file, &stage, energy.as_deref(), &kernel, &dtype),
        Command::Bench {
            workload,
            repeat,
            threads,
        } => bench(&workload, repeat, threads),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

/// Prints a driver's text result.
fn show(result: Result<String, String>) -> Result<(), String> {
    result.map(|text| print!("{text}"))
}

fn read(path: &Path) -> Result<SourceFile, String> {
    SourceFile::read(path)
}

#[allow(clippy::too_many_arguments)]
fn eval(
    path: &Path,
    energy: &str,
    at: &str,
    cond: Option<String>,
    grad: bool,
    hvp: Option<String>,
    dtype: &str,
    backend: &str,
    json: bool,
) -> Result<(), String> {
    let file = read(path)?;
    let module = driver::analyze(&file)?;
    let backend = driver::backend_named(backend)?;
    let store = driver::param_store(&module)?;
    let dtype = driver::dtype_named(dtype)?;
    let compiled = driver::compile_energy(&file, &module, energy, store, backend, dtype)?;
    let request = driver::EvalRequest {
        energy,
        at: driver::parse_vector("--at", at)?,
        cond: cond
            .map(|c| driver::parse_vector("--cond", &c))
            .transpose()?,
        grad,
        hvp: hvp.map(|v| driver::parse_vector("--hvp", &v)).transpose()?,
    };
    let result = driver::eval(&compiled, &request)?;
    if json {
        println!("{}", result.to_json());
    } else {
        print!("{}", result.to_text());
    }
    Ok(())
}

fn dump(
    path: &Path,
    stage: &str,
    energy: Option<&str>,
    kernel: &str,
    dtype: &str,
) -> Result<(), String> {
    let file = read(path)?;
    let text = driver::dump(
        &file,
        driver::Stage::named(stage)?,
        energy,
        driver::want_named(kernel)?,
        driver::dtype_named(dtype)?,
    )?;
    print!("{text}");
    Ok(())
}

fn bench(workload: &str, repeat: usize, threads: Option<usize>) -> Result<(), String> {
    let workloads = if workload == "all" {
        ebm::bench::workload_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        workload.split(',').map(|s| s.trim().to_string()).collect()
    };
    let opts = ebm::bench::Options {
        workloads,
        repeat: repeat.max(1),
        threads: threads.unwrap_or_else(ebm::backend::cpu::default_threads),
    };
    ebm::bench::run(&opts, &mut std::io::stdout())
}
