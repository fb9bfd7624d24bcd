//! The `ais(ENERGY, ..)` statement: log Z by annealed importance sampling
//! (`sample::ais`), printed with its standard error, and with a data set
//! the base fitted to its training rows and the held-out NLL of its
//! held-out rows. `ebm logz` is the same estimate on the command line.

use super::args::{R, Scope, bind, call_parts, keep};
use super::errors as err;
use super::training::data_name;
use crate::diag::{Diagnostic, Span};
use crate::sample::ais::{AisConfig, Transition};
use crate::sema::Statement;

/// `ais(..)`, checked.
#[derive(Clone, Debug)]
pub struct AisSpec {
    pub energy: String,
    pub data: Option<String>,
    pub config: AisConfig,
    pub span: Span,
}

pub const AIS_ARGS: &[&str] = &[
    "energy", "data", "steps", "runs", "chains", "sampler", "seed",
];

/// `ais(e, moons, steps = 1000, runs = 10, chains = 128, sampler = "mala", seed = 0)`.
pub fn parse_ais(scope: &mut Scope, stmt: &Statement) -> R<AisSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let span = stmt.call.span;
    let a = bind("ais", span, args, AIS_ARGS, 2, &mut diags);
    let energy = match a.get("energy") {
        Some(e) => keep(&mut diags, scope.energy(e)),
        None => {
            diags.push(err::missing_argument(
                "ais",
                "energy",
                "the name of an energy",
                span,
            ));
            None
        }
    };
    let data = a
        .get("data")
        .and_then(|e| keep(&mut diags, data_name(scope, e, "data")).map(|d| (d, e.span)));
    let mut cfg = AisConfig::new(1000, 10, 128, 0);
    let mut count = |scope: &mut Scope, arg: &str, min: u64, max: u64| {
        a.get(arg)
            .and_then(|v| keep(&mut diags, scope.count(v, arg, min, max)).map(|n| n as usize))
    };
    if let Some(n) = count(scope, "steps", 2, 1_000_000) {
        cfg.steps = n;
    }
    if let Some(n) = count(scope, "runs", 2, 10_000) {
        cfg.runs = n;
    }
    if let Some(n) = count(scope, "chains", 1, 1_000_000) {
        cfg.chains = n;
    }
    if let Some(n) = count(scope, "seed", 0, 1 << 53) {
        cfg.seed = n as u64;
    }
    if let Some(v) = a.get("sampler")
        && let Some(s) = keep(&mut diags, scope.choice(v, "sampler", &["mala", "hmc"]))
        && s == "hmc"
    {
        cfg.transition = Transition::Hmc { leapfrog: 10 };
    }
    cfg.threads = crate::backend::cpu::default_threads();
    let Some(energy) = energy else {
        return Err(diags);
    };
    // invariant: `scope.energy` accepted this name as a definition.
    let def = scope.module.def(&energy).expect("checked energy");
    let dim: usize = def.input.shape.iter().product();
    if let (Some(_), Some(e)) = (&def.cond, a.get("energy")) {
        diags.push(err::out_of_range(
            "energy",
            "an energy of x alone",
            &format!("`{energy}`, a conditional energy E(x | c)"),
            e.span,
        ));
    }
    if let Some(((name, Some(info)), dspan)) = &data
        && info.width != dim
    {
        diags.push(Diagnostic::new(
            "E0617",
            *dspan,
            format!(
                "expected data with {dim} values per row for `{energy}`, found `{name}` with {} columns",
                info.width
            ),
        ));
    }
    if let Err(e) = cfg.validate(dim) {
        diags.push(err::run_too_long(&e.to_string(), span));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(AisSpec {
        energy,
        data: data.map(|((name, _), _)| name),
        config: cfg,
        span,
    })
}
