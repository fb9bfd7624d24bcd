//! One constructor per kind of runner-statement error (`sample`, `plot`,
//! `save`, `summary`). Codes `E06xx`; each headline is one sentence,
//! "expected X, found Y", and the span is the offending argument. `E0601`–
//! `E0619` and `E0622` are found by `ebm check`; `E0620` only when the script
//! runs.

use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::Ident;

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

fn did_you_mean(d: Diagnostic, name: &str, candidates: &[&str]) -> Diagnostic {
    match suggest(name, candidates.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d,
    }
}

pub fn unknown_keyword(callee: &str, name: &Ident, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(
        "E0601",
        name.span,
        format!(
            "expected a keyword argument of `{callee}` ({}), found `{}`",
            known.join(", "),
            name.name
        ),
    )
    .with_label("unknown keyword");
    did_you_mean(d, &name.name, known)
}

pub fn wrong_type(what: &str, arg: &str, found: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0602",
        span,
        format!("expected {what} for `{arg}`, found {found}"),
    )
}

pub fn unknown_sampler(name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(
        "E0603",
        span,
        format!("expected a sampler ({}), found `{name}`", list(known)),
    )
    .with_label("unknown sampler");
    did_you_mean(d, name, known)
}

pub fn not_a_sampler(found: &str, span: Span, known: &[&str]) -> Diagnostic {
    Diagnostic::new(
        "E0603",
        span,
        format!("expected a sampler ({}), found {found}", list(known)),
    )
    .with_help("for example `mala(step = 0.05)` or `hmc(steps = 16)`")
}

pub fn unknown_energy(name: &str, span: Span, energies: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(
        "E0604",
        span,
        format!("expected the name of an energy, found `{name}`, which is not defined"),
    )
    .with_label("not an energy");
    match suggest(name, energies.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if energies.is_empty() => d.with_note("the program defines no energy"),
        None => d.with_note(format!("the program defines {}", list(energies))),
    }
}

pub fn not_an_energy(found: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0604",
        span,
        format!("expected the name of an energy, found {found}"),
    )
}

pub fn missing_argument(callee: &str, arg: &str, what: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0605",
        span,
        format!("expected {what} as argument `{arg}` of `{callee}`, found none"),
    )
}

pub fn out_of_range(arg: &str, expected: &str, found: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0606",
        span,
        format!("expected {expected} for `{arg}`, found {found}"),
    )
}

pub fn missing_cond(energy: &str, n: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0607",
        span,
        format!(
            "expected `cond = [..]` with {n} values, because `{energy}` is conditional, found no `cond`"
        ),
    )
    .with_help(format!(
        "pass the conditioning input, e.g. `cond = onehot(0, {n})`"
    ))
}

pub fn unexpected_cond(energy: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0607",
        span,
        format!("expected no `cond`, because `{energy}` is not conditional, found one"),
    )
}

pub fn cond_length(energy: &str, n: usize, found: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0607",
        span,
        format!("expected {n} values for the conditioning input of `{energy}`, found {found}"),
    )
}

pub fn not_samples(found: &str, span: Span, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(
        "E0608",
        span,
        format!("expected samples (a name bound by `let NAME = sample(..)` above), found {found}"),
    );
    if known.is_empty() {
        d.with_note("no `let NAME = sample(..)` comes before this statement")
    } else {
        d
    }
}

pub fn unknown_samples(name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let d = not_samples(&format!("`{name}`"), span, known).with_label("not samples");
    did_you_mean(d, name, known)
}

pub fn bad_extension(arg: &str, exts: &[&str], path: &str, span: Span) -> Diagnostic {
    let exts: Vec<String> = exts.iter().map(|e| format!(".{e}")).collect();
    let exts: Vec<&str> = exts.iter().map(String::as_str).collect();
    Diagnostic::new(
        "E0609",
        span,
        format!(
            "expected a file name ending in {} for `{arg}`, found \"{path}\"",
            list(&exts).replace('`', "")
        ),
    )
}

pub fn cmdstan_not_csv(path: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0609",
        span,
        format!("expected a file name ending in .csv for `file` with format = \"cmdstan\", found \"{path}\""),
    )
    .with_note("the CmdStan format writes one CSV file per chain: \"dir/name.csv\" becomes dir/name_1.csv, dir/name_2.csv, …")
}

pub fn too_many_positional(callee: &str, max: usize, span: Span) -> Diagnostic {
    let n = match max {
        1 => "1 positional argument".to_string(),
        n => format!("{n} positional arguments"),
    };
    Diagnostic::new(
        "E0610",
        span,
        format!("expected at most {n} in `{callee}`, found another"),
    )
    .with_help("name the remaining arguments, e.g. `chains = 4`")
}

pub fn duplicate_keyword(callee: &str, name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0610",
        name.span,
        format!(
            "expected each argument of `{callee}` once, found `{}` again",
            name.name
        ),
    )
}

pub fn positional_after_keyword(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0610",
        span,
        "expected keyword arguments after the first keyword argument, found a positional one",
    )
}

pub fn unknown_init(found: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0611",
        span,
        format!(
            "expected an initialisation (`normal(mean, std)`, `uniform(a, b)` or a \"file.csv\"/\"file.npy\" path), found {found}"
        ),
    )
}

pub fn bad_choice(arg: &str, choices: &[&str], found: &str, span: Span) -> Diagnostic {
    let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
    let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
    let d = Diagnostic::new(
        "E0612",
        span,
        format!(
            "expected {} for `{arg}`, found \"{found}\"",
            list(&quoted).replace('`', "")
        ),
    );
    did_you_mean(d, found, choices)
}

pub fn too_many_values(kept: usize, limit: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0613",
        span,
        format!("expected at most {limit} stored sample values (chains × kept draws × dimension), found {kept}"),
    )
    .with_help("use fewer chains or steps, or thin the chains with `thin = k`")
}

// ----- E062x: run time -----

pub fn run_failed(what: &str, message: &str, span: Span) -> Diagnostic {
    Diagnostic::new("E0620", span, format!("{what}: {message}"))
}

pub fn bad_data(message: &str, span: Span) -> Diagnostic {
    Diagnostic::new("E0618", span, format!("cannot use this data: {message}"))
}

/// `jem`/`evaluate` on a model that is no classifier, or on data whose
/// labels it cannot have.
pub fn not_a_classifier(message: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0619",
        span,
        format!("expected a classifier and its labelled data: {message}"),
    )
}

pub fn output_not_writable(message: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0621",
        span,
        format!("expected an output file that can be written: {message}"),
    )
}

pub fn run_too_long(message: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0614",
        span,
        format!("expected a run of bounded length: {message}"),
    )
}

/// A `train` argument that the chosen method does not use.
pub fn not_for_method(arg: &str, method: &str, applies_to: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0622",
        span,
        format!("expected no `{arg}` with method \"{method}\": it applies to {applies_to}"),
    )
}

pub fn gpu_needs_f32(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0623",
        span,
        "the gpu backend runs f32 only (WGSL has no f64): add `dtype = \"f32\"`".to_string(),
    )
}

pub fn not_a_gradient_sampler(found: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0603",
        span,
        format!("expected a sampler with a gradient step (`ula`, `mala` or `hmc`) for training, found `{found}`"),
    )
    .with_note("the negatives of contrastive divergence follow ∇ₓE: `rwmh` proposes blindly, and `pt` and `uld` are samplers for `sample(..)`, not training's short runs")
}
