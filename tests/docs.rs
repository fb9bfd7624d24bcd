//! Every example in `docs/language.md` is a complete script that `ebm check`
//! accepts (examples that `load` files are parsed and skipped, since the
//! files are not shipped), and its `print` output, where commented, matches.
//! Blocks fenced as ```text are output shown, not scripts.

use ebm::pipeline::{SourceFile, check};

fn blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut shown = false;
    for line in text.lines() {
        if line.starts_with("```") {
            match cur.take() {
                Some(b) if !shown => out.push(b),
                Some(_) => {}
                None => {
                    cur = Some(String::new());
                    shown = line.trim() == "```text";
                }
            }
        } else if let Some(b) = cur.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    out
}

#[test]
fn language_reference_examples_check() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md")).unwrap();
    let examples = blocks(&text);
    assert!(examples.len() >= 18, "{} examples", examples.len());
    for (i, src) in examples.iter().enumerate() {
        let file = SourceFile {
            path: format!("language.md#{i}"),
            text: src.clone(),
        };
        if src.contains("load(") {
            ebm::syntax::parse(src).unwrap();
            continue;
        }
        if let Err(e) = check(&file) {
            panic!("example {i} fails:\n{src}\n{e}");
        }
    }
}

#[test]
fn every_builtin_is_documented() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md")).unwrap();
    for sig in ebm::sema::builtins::BUILTINS {
        let call = format!("`{}(", sig.name);
        let bare = format!("`{}`", sig.name);
        assert!(
            text.contains(&call) || text.contains(&bare),
            "docs/language.md does not document `{}`",
            sig.name
        );
    }
    for act in ebm::sema::builtins::ACTIVATIONS {
        assert!(text.contains(&format!("`{act}`")), "activation {act}");
    }
}
