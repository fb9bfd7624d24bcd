//! The ebm language embedded in Rust: [`program!`] and [`energy!`] take ebm
//! source as a string literal (plain or raw), check it when the host crate
//! compiles — parse, names, shapes, lowering of every definition, script
//! arguments: everything `ebm check` does, through
//! `ebm::pipeline::check_source_in` — and expand to the code that builds the
//! handle at run time.
//!
//! ```ignore
//! let inline: ebm::api::Energy = ebm_macros::energy!(r#"
//!     energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.2^2)
//! "#);
//! let program: ebm::api::Program = ebm_macros::program!("
//!     param mu: [2] ~ zeros
//!     energy a(x: [2]) = 0.5 * sqnorm(x - mu)
//! ");
//! let both = &program.energy_handle("a")? & &inline;   // a(x) and ring(x)
//! ```
//!
//! A source that does not check is a compile error on the string literal,
//! with ebm's rendered diagnostic (`energy!:line:col`, counted inside the
//! literal, and a caret under the offending text).
//!
//! **Why the expansion cannot fail.** It calls
//! `ebm::api::Program::from_source_in`, which parses and analyses the same
//! text the macro checked, with the same compiler (this crate depends on
//! `ebm` by path), and `energy_handle` on an energy the macro saw. What the
//! check could not fix is outside the text: a file read by `load(..)` is
//! read again at run time (relative paths resolve against the host crate's
//! manifest folder, both times), so a file moved or changed since the build
//! makes the expansion panic with ebm's message. A source without `load`
//! does not fail. (Cargo does not know about such files: touch the source
//! file to re-check after changing one.)
//!
//! **Why `ebm_macros::` and not `ebm::`.** This crate depends on `ebm` to
//! check sources, so `ebm` cannot depend on it to re-export the macros (a
//! cycle): depend on both, and write `ebm_macros::energy!`. The expansion
//! names `::ebm`, so the host crate must call its dependency `ebm`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::LitStr;

/// An `ebm::api::Program` of the source: its energies and models compile
/// with `energy`/`energy_handle`/`model`, all reading one parameter store
/// at the parameters' initial values. Script statements (`print`,
/// `sample`, ...) are checked but not run. Each evaluation builds a new
/// program (and store).
///
/// ```ignore
/// let p = ebm_macros::program!("energy e(x: [2]) = sqnorm(x)");
/// let e = p.energy("e")?;
/// ```
#[proc_macro]
pub fn program(input: TokenStream) -> TokenStream {
    expand(input.into(), Kind::Program).into()
}

/// An `ebm::api::Energy` handle of the one energy the source defines (it
/// may also define constants, parameters and models the energy uses; for
/// several energies use [`program!`] and `energy_handle(name)`). Each
/// evaluation builds a new handle with its own parameter store.
///
/// ```ignore
/// let e = ebm_macros::energy!("energy e(x: [2]) = sqnorm(x)");
/// let both = &e & &(0.5 * &e);
/// ```
#[proc_macro]
pub fn energy(input: TokenStream) -> TokenStream {
    expand(input.into(), Kind::Energy).into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Program,
    Energy,
}

impl Kind {
    /// The macro's name, which is also the file name in diagnostics.
    fn name(self) -> &'static str {
        match self {
            Kind::Program => "program!",
            Kind::Energy => "energy!",
        }
    }
}

fn expand(input: Tokens, kind: Kind) -> Tokens {
    let lit: LitStr = match syn::parse2(input) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!(
                "{} takes ebm source as one string literal, e.g. {}(\"energy e(x: [2]) = sqnorm(x)\") or a raw string r#\"..\"#",
                kind.name(),
                kind.name()
            );
            return syn::Error::new(e.span(), msg).to_compile_error();
        }
    };
    match check(&lit, kind) {
        Ok(energy) => expansion(&lit, kind, energy.as_deref()),
        Err(errors) => errors,
    }
}

/// Checks the source; for `energy!`, returns the name of its one energy.
/// Errors are `compile_error!`s spanned on the literal.
fn check(lit: &LitStr, kind: Kind) -> Result<Option<String>, Tokens> {
    let text = lit.value();
    let name = kind.name();
    let dir = manifest_dir();
    let fail = |msg: String| syn::Error::new(lit.span(), msg).to_compile_error();
    if let Err(d) = ebm::pipeline::check_source_in(name, &text, &dir) {
        let mut errors = Tokens::new();
        for diag in d.diags.iter().take(ebm::diag::MAX_RENDERED) {
            errors.extend(fail(rendered(&diag.render(name, &text))));
        }
        if d.diags.len() > ebm::diag::MAX_RENDERED {
            let more = d.diags.len() - ebm::diag::MAX_RENDERED;
            errors.extend(fail(format!("ebm: {more} more errors not shown")));
        }
        return Err(errors);
    }
    if kind == Kind::Program {
        return Ok(None);
    }
    let file = ebm::pipeline::SourceFile {
        path: name.into(),
        text,
    };
    // The check above analysed the same text, so this succeeds; an error
    // would still be reported, not unwrapped.
    let module = ebm::pipeline::analyze_in(&file, &dir).map_err(|d| fail(d.to_string()))?;
    if let Some(st) = module.statements.first() {
        return Err(fail(format!(
            "energy! takes definitions only (const, param, energy, model); this source has a `{}` statement, which would never run: use program! for a script",
            st.name
        )));
    }
    let energies: Vec<&str> = module
        .defs
        .iter()
        .filter(|d| d.kind == ebm::sema::DefKind::Energy)
        .map(|d| d.name.as_str())
        .collect();
    match energies[..] {
        [one] => Ok(Some(one.to_string())),
        [] => Err(fail(
            "energy! needs a source that defines one energy (`energy e(x: [2]) = ..`); it defines none".into(),
        )),
        _ => Err(fail(format!(
            "energy! needs a source that defines one energy; this one defines {}: use program! and `.energy_handle(name)`",
            energies.join(", ")
        ))),
    }
}

/// One ebm diagnostic as a compile error's message: ebm's rendering, its
/// first line `error[E..]: ..` read as `ebm error[E..]: ..` after rustc's
/// own `error: `.
fn rendered(text: &str) -> String {
    format!("ebm {}", text.trim_end())
}

/// Where relative `load(..)` paths resolve: the host crate's manifest
/// folder (Cargo sets `CARGO_MANIFEST_DIR` for every crate it compiles).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(Into::into)
        .unwrap_or_else(|| ".".into())
}

fn expansion(lit: &LitStr, kind: Kind, energy: Option<&str>) -> Tokens {
    let name = kind.name();
    let program = quote! {
        ::ebm::api::Program::from_source_in(
            #lit,
            #name,
            ::std::path::Path::new(::core::env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap_or_else(|e| {
            // The text was checked when this crate compiled: only a file it
            // `load`s can have changed since.
            ::core::panic!("ebm_macros::{}: the source checked at compile time fails at run time:\n{}", #name, e)
        })
    };
    match energy {
        None => program,
        Some(energy) => quote! {{
            let program = #program;
            program.energy_handle(#energy).unwrap_or_else(|e| {
                ::core::panic!("ebm_macros::energy!: {}", e)
            })
        }},
    }
}
