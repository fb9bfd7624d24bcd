//! The `ebm` command line. `main.rs` declares the flags (clap) and prints;
//! `cli` reads the flags and runs each command on top of `ebm::pipeline`.
//! The library knows nothing of flags.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ebm",
    version,
    about = "A language and compiler for energy-based models"
)]
struct Cli {
    /// Without a command, on a terminal: `ebm repl`.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The flag Ctrl-C (or SIGTERM) sets. Training commands poll it: a run
/// stops after the current iteration and writes its checkpoint, and a
/// second signal ends the process. Every other command ends at the first.
/// Either way the temporaries of writes in progress are removed first, so
/// an interrupted write leaves the previous file and nothing else.
fn on_interrupt(polled: bool) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) || !polled {
            ebm::data::atomic::remove_live_temps_and_exit(130);
        }
    });
    stop
}

fn interruptible() -> Arc<AtomicBool> {
    on_interrupt(true)
}

/// `ebm repl`: Ctrl-C stops the command running (its sampler or training
/// loop polls `ebm::interrupt`) and the session goes on; a second Ctrl-C
/// before the command has stopped ends the process. At the prompt the line
/// editor reads Ctrl-C itself.
fn on_interrupt_in_session() {
    let _ = ctrlc::set_handler(|| {
        if ebm::interrupt::request() {
            ebm::data::atomic::remove_live_temps_and_exit(130);
        }
    });
}

#[derive(Subcommand)]
enum Command {
    /// Check a program; exit 0 when valid, print diagnostics and exit 1 otherwise
    /// (warnings, such as an energy unbounded below, are printed and exit 0).
    Check { file: PathBuf },
    /// Run a script's statements (`print(...)`, ...).
    Run { file: PathBuf },
    /// An interactive session: definitions, statements and :commands (:help),
    /// line editing, history and tab completion; from a pipe, one input per
    /// line (continued while brackets are open), results on stdout.
    Repl {
        /// A script loaded first (its statements run).
        file: Option<PathBuf>,
    },
    /// Evaluate an energy (and its gradient, a Hessian-vector product) at one point.
    Eval {
        file: PathBuf,
        /// The energy to evaluate.
        #[arg(long)]
        energy: String,
        /// The point x, comma-separated, row-major: "x0,x1,...".
        #[arg(long, allow_hyphen_values = true, required_unless_present = "data")]
        at: Option<String>,
        /// Evaluate E at every row of a .csv/.npy file instead: one energy per line
        /// (a JSON array with --json).
        #[arg(long, conflicts_with_all = ["at", "grad", "hvp"])]
        data: Option<PathBuf>,
        /// Trained parameters (params.safetensors of `ebm train`).
        #[arg(long)]
        params: Option<PathBuf>,
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
        #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
        backend: String,
        /// One JSON line: {"energy": e, "grad": [...], "hvp": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Sample an energy with Langevin, MALA, random-walk MH, HMC, parallel tempering
    /// (pt) or underdamped Langevin (uld); write the draws as CSV or NPY.
    // A negative number after a flag is its value (`--step -1` is then
    // refused as a step, not taken for an unknown flag).
    #[command(allow_negative_numbers = true)]
    Sample {
        file: PathBuf,
        #[command(flatten)]
        options: cli::sample::SampleOptions,
    },
    /// Train an energy on data: contrastive divergence (cd), persistent CD with a
    /// replay buffer (pcd), improved CD (icd), exact/sliced/denoising score
    /// matching (sm, ssm, dsm) or noise-contrastive estimation (nce); writes
    /// params.safetensors, checkpoint.safetensors, metrics.csv and loss.png into --out.
    #[command(allow_negative_numbers = true)]
    Train {
        /// The program defining the energy (omit with --resume).
        file: Option<PathBuf>,
        #[command(flatten)]
        options: Box<cli::train::TrainOptions>,
    },
    /// Train a classifier (`model f(x) -> [K]`) as a JEM: cross-entropy plus
    /// the energy E(x) = −logsumexp f(x) by persistent SGLD (or, with
    /// --baseline, by cross-entropy only); writes params.safetensors,
    /// checkpoint.safetensors, metrics.csv and loss.png into --out.
    #[command(allow_negative_numbers = true)]
    Jem {
        /// The program defining the model (omit with --resume).
        file: Option<PathBuf>,
        #[command(flatten)]
        options: Box<cli::jem::JemOptions>,
    },
    /// Predict with a classifier: logits, probabilities and the class per row.
    Predict {
        file: PathBuf,
        #[command(flatten)]
        options: cli::jem::PredictOptions,
    },
    /// Evaluate a (trained) energy on held-out data: MMD² of long-run samples
    /// against the data (with its noise floor), and for 2-D energies log Z,
    /// the held-out NLL and KL(data‖model).
    #[command(allow_negative_numbers = true)]
    Evaluate {
        file: PathBuf,
        #[command(flatten)]
        options: cli::evaluate::EvaluateOptions,
    },
    /// Estimate log Z by annealed importance sampling (R independent runs:
    /// mean ± standard error), from a Gaussian fitted to --data or a
    /// standard normal; with --heldout also the held-out NLL.
    #[command(allow_negative_numbers = true)]
    Logz {
        file: PathBuf,
        #[command(flatten)]
        options: cli::logz::LogzOptions,
    },
    /// Compile a program's energies and models, with their parameter values, into
    /// a model file (.ebmc) that `eval`, `sample`, `evaluate`, `logz`, `info`,
    /// scripts (`use ... from`), Rust and C load without the source.
    Build {
        file: PathBuf,
        /// A definition to include (repeat for several); all of them when omitted.
        #[arg(long = "energy")]
        energies: Vec<String>,
        /// Parameter values: params.safetensors of `ebm train`/`ebm jem`, or with
        /// --map a state dict saved from PyTorch.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Read --params as a foreign state dict through this name map:
        /// "fc1.weight=net.mlp0.w1:T,fc1.bias=net.mlp0.b1" (`:T` transposes an
        /// nn.Linear weight [out, in] into ebm's [in, out]), or a file of such lines.
        #[arg(long)]
        map: Option<String>,
        /// The model file to write.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
    /// Describe a model file: its definitions, parameters and provenance.
    Info {
        file: PathBuf,
        /// Print the source text stored in the file instead.
        #[arg(long)]
        source: bool,
    },
    /// Summarise a sample: mean, sd, quantiles, split R-hat, bulk and tail ESS.
    #[command(allow_negative_numbers = true)]
    Summary {
        /// A sample file (.csv, .npy), CmdStan's files, one per chain
        /// (a_1.csv a_2.csv …), or their base name a.csv.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Show at most this many coordinates.
        #[arg(long, default_value_t = 20)]
        max: usize,
    },
    /// Plot a sample as a PNG (over an energy's density with --energy-file and --energy).
    Plot {
        /// A sample file (.csv, .npy), CmdStan's files, one per chain
        /// (a_1.csv a_2.csv …), or their base name a.csv.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
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
    /// Print a compiler stage: ast, ir, grad (after AD), opt (simplified), clif (Cranelift IR),
    /// wgsl (the GPU backend's compute shaders).
    Dump {
        file: PathBuf,
        #[arg(long, value_parser = ["ast", "ir", "grad", "opt", "clif", "wgsl"])]
        stage: String,
        /// Only this definition (default: all of them).
        #[arg(long)]
        energy: Option<String>,
        /// The kernel shown by grad/opt/clif: a derivative kernel, or a
        /// sampler step as the engine fuses it (ula, mala, rwmh, leapfrog).
        #[arg(long, default_value = "grad", value_parser = ["energy", "grad", "params", "hvp", "mixed", "all", "ula", "mala", "rwmh", "leapfrog"])]
        kernel: String,
        #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
        dtype: String,
    },
    /// Time the peer benchmark workloads (shared/bench/peers) and print JSON lines.
    #[command(allow_negative_numbers = true)]
    Bench {
        /// Comma-separated workloads, or `all`: gmm2d_ula, gauss100_ula, mlp_ula,
        /// mala_gmm2d, hmc_gmm2d. (W4 and W5 are timed through `ebm train`
        /// and `ebm jem` by bench/compare.py.)
        #[arg(long, default_value = "all")]
        workload: String,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Worker threads (default: the machine's cores, or EBM_THREADS).
        #[arg(long)]
        threads: Option<usize>,
        /// The backend the energies run on (f32).
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "gpu"])]
        backend: String,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let command = match Cli::parse().command {
        Some(c) => c,
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Command::Repl { file: None }
        }
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::from(2);
        }
    };
    // The memory limit every estimate is checked against: a value that is
    // not a size is refused like a malformed flag, not silently ignored.
    if let Err(m) = ebm::budget::from_env() {
        eprintln!("error: {m}");
        return ExitCode::from(2);
    }
    match command {
        Command::Train { .. } | Command::Jem { .. } => {}
        Command::Repl { .. } => on_interrupt_in_session(),
        _ => {
            on_interrupt(false);
        }
    }
    let result = match command {
        Command::Check { file } => cli::check(&file),
        Command::Repl { file } => cli::repl::repl(file.as_deref()),
        Command::Run { file } => cli::run(&file),
        Command::Eval {
            file,
            energy,
            at,
            data,
            params,
            cond,
            grad,
            hvp,
            dtype,
            backend,
            json,
        } => {
            let flags = cli::EvalFlags {
                energy,
                at: at.unwrap_or_default(),
                data,
                params,
                cond,
                grad,
                hvp,
                dtype,
                backend,
                json,
            };
            cli::eval(&file, &flags)
        }
        Command::Sample { file, options } => cli::sample::sample(&file, &options),
        Command::Train { file, options } => {
            cli::train::train(file.as_deref(), &options, interruptible())
        }
        Command::Jem { file, options } => cli::jem::jem(file.as_deref(), &options, interruptible()),
        Command::Predict { file, options } => cli::jem::predict(&file, &options),
        Command::Evaluate { file, options } => cli::evaluate::evaluate(&file, &options),
        Command::Logz { file, options } => cli::logz::logz(&file, &options),
        Command::Build {
            file,
            energies,
            params,
            map,
            out,
        } => {
            let flags = cli::model::BuildFlags {
                energies,
                params,
                map,
                out,
            };
            cli::model::build(&file, &flags)
        }
        Command::Info { file, source } => cli::model::info(&file, source),
        Command::Summary { files, max } => cli::draws::summary(&files, max),
        Command::Plot {
            files,
            out,
            energy_file,
            energy,
            cond,
            kind,
            title,
        } => {
            let options = cli::draws::PlotOptions {
                out,
                energy_file,
                energy,
                cond,
                kind,
                title,
            };
            cli::draws::plot(&files, &options)
        }
        Command::Dump {
            file,
            stage,
            energy,
            kernel,
            dtype,
        } => cli::dump(&file, &stage, energy.as_deref(), &kernel, &dtype),
        Command::Bench {
            workload,
            repeat,
            threads,
            backend,
        } => cli::bench(&workload, repeat, threads, &backend),
    };
    match result {
        Ok(text) => {
            // A closed pipe (`ebm predict ... | head`) is the reader's
            // choice, not a failure; print! would panic on it.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(failure) => {
            eprint!("{}", failure.text());
            ExitCode::FAILURE
        }
    }
}
