//! The REPL's `:commands`, one row each in [`COMMANDS`]: inspecting the
//! stages of a definition (`:ir`, `:grad`, `:opt`, `:clif`), evaluating and
//! sampling, plotting in the terminal, and the session itself (`:load`,
//! `:save`, `:defs`, `:reset`, `:quit`). Commands that amount to a statement
//! (`:eval` is `print(E(..))`, `:sample` is `sample(..)`) run as that
//! statement, so they are checked, reported and saved like one.

use std::path::Path;

use super::entries::{self, Entry, Kind, Origin};
use super::{Reply, Session, Tail, against};
use crate::diag::{Diagnostic, Span};
use crate::pipeline::{self, SourceFile, Stage};
use crate::sema::{DefKind, shape_text};

/// One command: its name, its arguments and one line of help.
pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    run: fn(&mut Session, &str, &Origin) -> Reply,
}

/// Every command, in the order `:help` lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "[NAME]",
        help: "list the commands, or describe a builtin, command or definition",
        run: help,
    },
    Command {
        name: "type",
        args: "EXPR",
        help: "the shape of an expression, or what a name is",
        run: type_of,
    },
    Command {
        name: "defs",
        args: "",
        help: "the session's definitions, in dependency order",
        run: defs,
    },
    Command {
        name: "eval",
        args: "NAME at [v0, v1, ..] [| c]",
        help: "the energy (or model output) at a point",
        run: eval,
    },
    Command {
        name: "grad",
        args: "NAME [params]",
        help: "the simplified gradient ∇ₓE (or ∇_θE) as an expression",
        run: grad,
    },
    Command {
        name: "ir",
        args: "NAME",
        help: "the definition's IR graph",
        run: |s, a, o| stage(s, a, o, Stage::Ir),
    },
    Command {
        name: "opt",
        args: "NAME [KERNEL]",
        help: "the optimised kernel (grad by default; energy, params, hvp, mixed, ula, mala, ..)",
        run: |s, a, o| stage(s, a, o, Stage::Opt),
    },
    Command {
        name: "clif",
        args: "NAME [KERNEL]",
        help: "the kernel as Cranelift IR",
        run: |s, a, o| stage(s, a, o, Stage::Clif),
    },
    Command {
        name: "sample",
        args: "NAME [, ARGS] [> FILE.png]",
        help: "a short run of sample(NAME, ARGS): summary and a terminal plot (and a PNG)",
        run: sample,
    },
    Command {
        name: "plot",
        args: "[NAME] [FILE.png]",
        help: "a terminal plot of samples (the last :sample by default) or of a 1-D/2-D energy",
        run: plot,
    },
    Command {
        name: "load",
        args: "FILE",
        help: "read a script's items into the session (its statements run)",
        run: load,
    },
    Command {
        name: "save",
        args: "FILE",
        help: "write the definitions and the statements run as a script",
        run: save,
    },
    Command {
        name: "reset",
        args: "",
        help: "forget every definition, sample and parameter value",
        run: |s, _, _| {
            s.reset();
            Reply::default()
        },
    },
    Command {
        name: "quit",
        args: "",
        help: "leave (so does end of input, Ctrl-D)",
        run: |_, _, _| Reply {
            quit: true,
            ..Reply::default()
        },
    },
];

/// Runs `line` (`:name args`).
pub fn run(session: &mut Session, line: &str, origin: &Origin) -> Reply {
    let body = line.trim_start_matches(':');
    let (word, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let matches: Vec<&Command> = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(word))
        .collect();
    let command = match (COMMANDS.iter().find(|c| c.name == word), matches.as_slice()) {
        (Some(c), _) => c,
        (None, [one]) if !word.is_empty() => one,
        _ => {
            let mut d = Diagnostic::new(
                "E0701",
                Span::new(0, word.len() + 1),
                format!("unknown command `:{word}`"),
            );
            if matches.len() > 1 {
                let names: Vec<String> = matches.iter().map(|c| format!(":{}", c.name)).collect();
                d = d.with_help(format!("`:{word}` could be {}", names.join(", ")));
            } else {
                d = d.with_help("`:help` lists the commands");
            }
            return failure(line, origin, d);
        }
    };
    crate::sema::with_big_stack(|| (command.run)(session, rest.trim(), origin))
}

/// An error about the command line itself.
fn failure(line: &str, origin: &Origin, d: Diagnostic) -> Reply {
    let mut r = Reply::default();
    r.diagnostics.push(against(line, origin, vec![d]));
    r.rejected = true;
    r
}

/// An error about a command's arguments (pointing at the whole line).
fn bad_args(line: &str, origin: &Origin, message: String) -> Reply {
    let d = Diagnostic::new("E0702", Span::new(0, line.len()), message);
    failure(line, origin, d)
}

fn output(text: String) -> Reply {
    let nl = if text.ends_with('\n') || text.is_empty() {
        ""
    } else {
        "\n"
    };
    Reply {
        out: format!("{text}{nl}"),
        ..Reply::default()
    }
}

fn help(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    if args.is_empty() {
        let mut text = String::from(
            "Type items of the language (definitions run nothing; statements run at once; a bare\n\
             expression is printed) or a command:\n",
        );
        for c in COMMANDS {
            let head = format!(":{} {}", c.name, c.args);
            text.push_str(&format!("  {head:<34} {}\n", c.help));
        }
        text.push_str("An input continues while a bracket is open. Tab completes names.\n");
        return output(text);
    }
    let name = args.trim_start_matches(':');
    if let Some(c) = COMMANDS.iter().find(|c| c.name == name) {
        return output(format!(":{} {}  — {}", c.name, c.args, c.help));
    }
    if let Some(e) = s.entries.iter().find(|e| e.names.iter().any(|n| n == name)) {
        return output(e.text.clone());
    }
    if let Some(sig) = crate::sema::builtins::lookup(name) {
        return output(format!(
            "{} — {}",
            crate::sema::builtins::signature_text(sig),
            sig.doc
        ));
    }
    bad_args(
        &format!(":help {args}"),
        origin,
        format!("no command, builtin or definition named `{name}`"),
    )
}

fn defs(s: &mut Session, _: &str, _: &Origin) -> Reply {
    let refs: Vec<&Entry> = s.entries.iter().collect();
    let mut text = String::new();
    for i in entries::dependency_order(&refs) {
        let e = refs[i];
        let mark = if e.broken {
            "  # set aside: does not check"
        } else {
            ""
        };
        text.push_str(&format!("{}{mark}\n", e.text));
    }
    output(text)
}

fn type_of(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":type {args}");
    if args.is_empty() {
        return bad_args(&line, origin, "`:type` needs an expression".into());
    }
    if let Some(text) = describe_name(s, args) {
        return output(text);
    }
    let mut reply = Reply::default();
    let mut candidates = s.entries.clone();
    let tail = Tail {
        prefix: "print(",
        text: args,
        suffix: ")",
    };
    let Some(built) = s.settle(&mut candidates, None, Some((tail, origin)), &mut reply) else {
        return reply;
    };
    let shape = built
        .module
        .statements
        .last()
        .and_then(|st| st.args.as_ref())
        .and_then(|a| a.first())
        .map(|e| shape_text(&e.shape));
    match shape {
        Some(shape) => output(shape),
        None => bad_args(
            &line,
            origin,
            format!("`{args}` is not a tensor expression"),
        ),
    }
}

/// What a name denotes: a definition's signature, a constant's or a
/// parameter's shape, a sample or a data set.
fn describe_name(s: &Session, name: &str) -> Option<String> {
    let m = &s.module;
    if let Some(d) = m.def(name) {
        let cond = d
            .cond
            .as_ref()
            .map(|c| format!(" | c: {}", shape_text(&c.shape)))
            .unwrap_or_default();
        let (kind, out) = match d.kind {
            DefKind::Energy => ("energy", String::new()),
            DefKind::Model => ("model", format!(" -> {}", shape_text(&d.output))),
        };
        let params = if d.params.is_empty() {
            String::new()
        } else {
            format!("  (parameters: {})", d.params.join(", "))
        };
        return Some(format!(
            "{kind} {name}(x: {}{cond}){out}{params}",
            shape_text(&d.input.shape)
        ));
    }
    if let Some(c) = m.constant(name) {
        return Some(format!("const {name}: {}", shape_text(&c.shape)));
    }
    if let Some(p) = m.param(name) {
        return Some(format!("param {name}: {}", shape_text(&p.shape)));
    }
    if let Some(x) = s.samples.get(name) {
        let d = &x.draws;
        return Some(format!(
            "samples {name}: {} chains × {} draws × {} coordinates",
            d.chains, d.draws, d.dim
        ));
    }
    if let Some(d) = s.data.get(name) {
        let held = d
            .heldout
            .as_ref()
            .map(|h| format!(" (+ {} held out)", h.rows))
            .unwrap_or_default();
        return Some(format!(
            "data {name}: {} rows{held} × {} columns",
            d.train.rows, d.train.dim
        ));
    }
    None
}

/// The definition `name` (an energy, or a model where `models` allows).
fn definition(
    s: &Session,
    name: &str,
    line: &str,
    origin: &Origin,
    models: bool,
) -> Result<DefKind, Reply> {
    if name.is_empty() {
        return Err(bad_args(
            line,
            origin,
            "expected the name of a definition".into(),
        ));
    }
    match s.module.def(name) {
        Some(d) if d.kind == DefKind::Model && !models => Err(bad_args(
            line,
            origin,
            format!("`{name}` is a model; this command needs an energy"),
        )),
        Some(d) => Ok(d.kind),
        None if s
            .entries
            .iter()
            .any(|e| e.broken && e.names.iter().any(|n| n == name)) =>
        {
            Err(bad_args(
                line,
                origin,
                format!(
                    "`{name}` is set aside: it has not checked since a redefinition (`:defs` lists it; redefine it or what it reads)"
                ),
            ))
        }
        None => {
            let names: Vec<&str> = s.module.defs.iter().map(|d| d.name.as_str()).collect();
            let mut msg = format!("no energy or model named `{name}`");
            match crate::diag::suggest(name, names.iter().copied()) {
                Some(sugg) => msg.push_str(&format!("; did you mean `{sugg}`?")),
                None if names.is_empty() => msg.push_str("; nothing is defined yet"),
                None => msg.push_str(&format!("; defined: {}", names.join(", "))),
            }
            Err(bad_args(line, origin, msg))
        }
    }
}

/// The session's program as a source file (for the pipeline's printers).
fn source(s: &Session) -> SourceFile {
    SourceFile {
        path: "<session>".into(),
        text: s.assembly.text.clone(),
    }
}

fn stage(s: &mut Session, args: &str, origin: &Origin, stage: Stage) -> Reply {
    let name_of = |st: Stage| {
        pipeline::Stage::NAMES
            .iter()
            .find(|(_, x)| *x == st)
            .map(|(n, _)| *n)
            .unwrap_or("")
    };
    let line = format!(":{} {args}", name_of(stage));
    let mut words = args.split_whitespace();
    let name = words.next().unwrap_or("");
    let kernel = words.next().unwrap_or("grad");
    if let Err(r) = definition(s, name, &line, origin, true) {
        return r;
    }
    let kernel = match pipeline::dump_kernel_named(kernel) {
        Ok(k) => k,
        Err(e) => return bad_args(&line, origin, e.to_string()),
    };
    let file = source(s);
    // `dump` re-analyses the program: the session's text with its base folder.
    match pipeline::dump_in(
        &file,
        &s.base_dir,
        stage,
        Some(name),
        kernel,
        crate::backend::DType::F64,
    ) {
        Ok(text) => output(text),
        Err(e) => bad_args(&line, origin, e.to_string()),
    }
}

fn grad(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":grad {args}");
    let mut words = args.split_whitespace();
    let name = words.next().unwrap_or("");
    let wrt_params = match words.next() {
        None | Some("x") => false,
        Some("params") => true,
        Some(other) => {
            return bad_args(
                &line,
                origin,
                format!("expected `x` or `params` after the name, found `{other}`"),
            );
        }
    };
    if let Err(r) = definition(s, name, &line, origin, false) {
        return r;
    }
    let spec = if wrt_params {
        crate::autodiff::derived::KernelSpec::GRAD_PARAMS
    } else {
        crate::autodiff::derived::KernelSpec::ENERGY_GRAD
    };
    let graph = match pipeline::optimized_kernel_graph(&source(s), &s.module, name, spec) {
        Ok(g) => g,
        Err(e) => return bad_args(&line, origin, e.to_string()),
    };
    let outputs: Vec<(String, String)> = graph
        .outputs
        .iter()
        .filter(|o| o.name != "energy")
        .map(|o| {
            let label = match o.name.strip_prefix("grad.") {
                Some(p) => format!("∂{name}/∂{p}"),
                None => format!("∇ₓ{name}"),
            };
            (o.name.clone(), label)
        })
        .collect();
    if outputs.is_empty() {
        return output(format!("`{name}` has no parameters"));
    }
    let pairs: Vec<(&str, &str)> = outputs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    output(crate::ir::math::math(&graph, &pairs))
}

fn eval(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":eval {args}");
    let (name, point) = match args.split_once(" at ") {
        Some((n, p)) => (n.trim(), p.trim()),
        None => {
            return bad_args(
                &line,
                origin,
                "expected `:eval NAME at [v0, v1, ..]`".into(),
            );
        }
    };
    if let Err(r) = definition(s, name, &line, origin, true) {
        return r;
    }
    let text = format!("print({name}({point}))");
    let reads = [name.to_string()].into_iter().collect();
    s.statement(Tail::plain(&text), origin, &reads)
}

fn sample(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let (call, png) = match args.rsplit_once('>') {
        Some((a, p)) if p.trim().to_ascii_lowercase().ends_with(".png") => {
            (a.trim(), Some(p.trim()))
        }
        _ => (args, None),
    };
    let call = call.trim_start_matches(',').trim();
    let line = format!(":sample {args}");
    let name = call
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap_or("");
    if let Err(r) = definition(s, name, &line, origin, false) {
        return r;
    }
    let rest = call[name.len()..].trim().trim_start_matches(',').trim();
    let text = if rest.is_empty() {
        format!("sample({name})")
    } else {
        format!("sample({name}, {rest})")
    };
    let mut reply = Reply::default();
    let mut candidates = s.entries.clone();
    let Some(built) = s.settle(
        &mut candidates,
        None,
        Some((Tail::plain(&text), origin)),
        &mut reply,
    ) else {
        return reply;
    };
    let Some(crate::script::Action::Sample(spec)) = built.actions.last().cloned() else {
        return reply;
    };
    let (drawn, _) = s.with_runner(&built, origin, |r| crate::script::draw(r, &spec));
    let sampled = match drawn {
        Ok(x) => x,
        Err(d) => {
            let local = Diagnostic {
                span: Span::new(0, text.len()),
                ..d
            };
            reply.diagnostics.push(against(&text, origin, vec![local]));
            reply.rejected = true;
            return reply;
        }
    };
    let d = &sampled.draws;
    let mut out = String::new();
    if let Some(summary) = &d.summary {
        out.push_str(&format!("{text} with {summary}\n"));
    }
    out.push_str(&crate::stats::summarize(d, 8).to_string());
    out.push_str(&terminal_plot(d));
    if let Some(p) = png {
        match png_of(&sampled, Path::new(p)) {
            Ok(()) => out.push_str(&format!("wrote {p}\n")),
            Err(e) => return bad_args(&line, origin, format!("cannot plot to {p}: {e}")),
        }
    }
    reply.out = out;
    s.history.push(Entry {
        text,
        origin: origin.clone(),
        kind: Kind::Binding,
        names: Vec::new(),
        reads: [name.to_string()].into_iter().collect(),
        broken: false,
    });
    s.last_sample = Some(sampled);
    reply
}

/// A braille scatter of the first two coordinates, or a histogram of a 1-D sample.
fn terminal_plot(d: &crate::sample::Draws) -> String {
    let (w, h) = (60, 16);
    match d.dim {
        0 => String::new(),
        1 => crate::plot::text::histogram(&d.coord(0), w, h),
        _ => {
            let pts: Vec<(f64, f64)> = d.x.chunks(d.dim).map(|p| (p[0], p[1])).collect();
            let mut t = crate::plot::text::scatter(&pts, w, h);
            if d.dim > 2 {
                t = format!("x0 against x1 (of {} coordinates)\n{t}", d.dim);
            }
            t
        }
    }
}

fn png_of(x: &crate::script::Sampled, path: &Path) -> Result<(), String> {
    let target =
        crate::sample::DensityOf::new(&x.energy, x.cond.clone()).map_err(|e| e.to_string())?;
    let title = crate::script::runners::default_title(&x.draws);
    crate::script::runners::plot_draws(path, &x.draws, Some(&target), "auto", &title)
}

fn plot(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":plot {args}");
    let mut name = None;
    let mut png = None;
    for w in args.split_whitespace() {
        if w.to_ascii_lowercase().ends_with(".png") {
            png = Some(w);
        } else {
            name = Some(w);
        }
    }
    let sampled = match name {
        Some(n) => s.samples.get(n),
        None => s.last_sample.as_ref(),
    };
    if let Some(x) = sampled {
        let mut text = terminal_plot(&x.draws);
        if let Some(p) = png {
            match png_of(x, Path::new(p)) {
                Ok(()) => text.push_str(&format!("wrote {p}\n")),
                Err(e) => return bad_args(&line, origin, format!("cannot plot to {p}: {e}")),
            }
        }
        return output(text);
    }
    let Some(n) = name else {
        return bad_args(
            &line,
            origin,
            "nothing sampled yet: `:sample NAME` first, or name samples or an energy".into(),
        );
    };
    if s.module.def(n).is_none() {
        return bad_args(
            &line,
            origin,
            format!("no samples, energy or model named `{n}`"),
        );
    }
    if let Err(r) = definition(s, n, &line, origin, false) {
        return r;
    }
    match energy_plot(s, n) {
        Ok(text) => output(text),
        Err(e) => bad_args(&line, origin, e),
    }
}

/// The density exp(−E) of a 1-D or 2-D energy over [−4, 4]ᵈ, in the terminal.
fn energy_plot(s: &Session, name: &str) -> Result<String, String> {
    let graph = crate::lower::lower(&s.module, name).map_err(|d| d.message)?;
    let backend = crate::backend::named("cpu").map_err(|e| e.to_string())?;
    let energy = crate::runtime::CompiledEnergy::in_store(
        graph,
        s.params.clone(),
        backend,
        crate::backend::DType::F64,
    )
    .map_err(|e| e.to_string())?;
    if energy.cond_dim() > 0 {
        return Err(format!(
            "`{name}` is conditional: sample it with a `cond` and plot the samples"
        ));
    }
    let eval = |pts: &[f64]| -> Result<Vec<f64>, String> {
        energy
            .energy_and_grad_x(pts, None, pts.len() / energy.dim())
            .map(|r| r.energy)
            .map_err(|e| e.to_string())
    };
    crate::plot::text::density(energy.dim(), (-4.0, 4.0), 60, 16, &eval)
}

fn load(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":load {args}");
    if args.is_empty() {
        return bad_args(&line, origin, "`:load` needs a file name".into());
    }
    let file = match SourceFile::read(Path::new(args)) {
        Ok(f) => f,
        Err(e) => return bad_args(&line, origin, e.to_string()),
    };
    let at = Origin {
        path: file.path.clone(),
        line: 1,
    };
    s.items(&file.text, &at)
}

fn save(s: &mut Session, args: &str, origin: &Origin) -> Reply {
    let line = format!(":save {args}");
    if args.is_empty() {
        return bad_args(&line, origin, "`:save` needs a file name".into());
    }
    let (text, dropped) = s.script();
    if let Err(e) = crate::data::atomic::write_atomic(Path::new(args), text.as_bytes()) {
        return bad_args(&line, origin, format!("cannot write {args}: {e}"));
    }
    let defs = s
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Definition && !e.broken)
        .count();
    let mut msg = format!(
        "wrote {args} ({defs} definitions, {} statements)",
        s.history.len() - dropped
    );
    if dropped > 0 {
        msg.push_str(&format!(
            "; left out {dropped} statements that no longer check"
        ));
    }
    output(msg)
}

impl Session {
    /// The session as a script: its definitions in dependency order, then
    /// the statements that ran, in order, without those that no longer
    /// check against today's definitions (their number is returned).
    pub fn script(&self) -> (String, usize) {
        let defs: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Definition && !e.broken)
            .collect();
        let set_aside: Vec<&Entry> = self.entries.iter().filter(|e| e.broken).collect();
        let mut kept: Vec<&Entry> = self.history.iter().collect();
        loop {
            let mut assembly = entries::Assembly::default();
            for i in entries::dependency_order(&defs) {
                assembly.push(i, "", &defs[i].text, "");
            }
            for (k, h) in kept.iter().enumerate() {
                assembly.push(defs.len() + k, "", &h.text, "");
            }
            let bad = match self.analyze(&assembly.text) {
                Ok(_) => None,
                Err(diags) => diags.iter().find_map(|d| {
                    let lens = |p: usize| {
                        if p < defs.len() {
                            defs[p].text.len()
                        } else {
                            kept.get(p - defs.len()).map_or(0, |h| h.text.len())
                        }
                    };
                    assembly
                        .locate(d, lens)
                        .and_then(|(p, _)| p.checked_sub(defs.len()))
                }),
            };
            match bad {
                Some(k) => {
                    kept.remove(k);
                }
                None => {
                    let mut text = String::from(
                        "# Saved from an `ebm repl` session: definitions in dependency order,\n\
                         # then the statements that ran, in order.\n\n",
                    );
                    text.push_str(&assembly.text);
                    text.push('\n');
                    for e in &set_aside {
                        text.push_str("\n# set aside in the session (does not check):\n");
                        for l in e.text.lines() {
                            text.push_str(&format!("# {l}\n"));
                        }
                    }
                    return (text, self.history.len() - kept.len());
                }
            }
        }
    }
}
