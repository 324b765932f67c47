//! The import direction (issue 34): the tree follows the pipeline and imports only run down
//! it. Every `crate::X` path in `src/` (in `use` lines and inline, grouped `crate::{X, Y}`
//! included; `ecr_deployd::X` in the binary's files) names the top-level module `X` it
//! imports; [`LAYERS`] gives each top-level module a layer, and a module may import only
//! from a lower layer than its own (never from a sibling of the same layer, never upward).
//! A failure names the file, the line and the two modules.
//!
//! Inside the deploy stage the same holds between its folders ([`DEPLOY_LAYERS`]: `sequence`
//! < `gates`, `neighbourhood` < `operator`), so that no import runs in a circle through
//! `deploy/`: a folder may import from its own layer or above only a pure value file (one
//! that names nothing of `deploy/`, like the gates' verdicts the sequence reads). Method
//! calls are not imports: the folders' `impl Executor` blocks (one type, split by file)
//! still call each other both ways.
//!
//! Exempt, because test code may reach anywhere: files named `tests.rs` or `fakes.rs`, every
//! module declared under `#[cfg(test)]` (with its files: `fakes`, `fixtures`, `recorded`),
//! and every item under `#[cfg(test)]` inside a file. Comments (doc links included) are not
//! imports and are not read.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first: `(module, layer, what it is)`. Keep the layout in `src/lib.rs`
/// and the README's Layout section in step with it.
const LAYERS: &[(&str, u32, &str)] = &[
    (
        "model",
        0,
        "domain values, labels and their parsing, the shared error: the leaf",
    ),
    ("stats", 1, "map-size counters: a leaf utility"),
    ("retry", 1, "backoff for transient errors: a leaf utility"),
    ("gate", 2, "supply-chain verdicts over fetched facts (pure)"),
    ("fleet", 2, "fleet-wave verdicts over results (pure)"),
    (
        "image",
        2,
        "image identity: which digest satisfies a desired image (pure)",
    ),
    (
        "event",
        3,
        "queue bodies -> hints (pure; names gate and fleet results)",
    ),
    (
        "ports",
        4,
        "the seams: traits over model, event, image, gate and fleet values",
    ),
    ("store", 5, "SQLite state"),
    (
        "metrics",
        6,
        "Prometheus metrics (reads the store's counts)",
    ),
    (
        "control",
        6,
        "policies, windows, the lease and the control socket",
    ),
    ("ledger", 7, "the fleet ledger and its writer"),
    ("http", 7, "the HTTP servers' accept loop"),
    ("systemd", 7, "sd_notify"),
    (
        "config",
        8,
        "TOML + env -> validated Settings (builds control, gate, fleet, ledger values)",
    ),
    (
        "notify",
        9,
        "notifications, off the deploy path; the results bus behind ports::EventBus",
    ),
    ("deploy", 10, "the deploy stage"),
    (
        "archive",
        10,
        "S3 archives as an image source; the sources behind one Registry",
    ),
    (
        "request",
        11,
        "the reconcile request shared by intake and reconcile",
    ),
    (
        "intake",
        12,
        "the receive loop, the push listener, the local queue",
    ),
    ("reconcile", 12, "coalesce, resolve, hand off, sweeps"),
    (
        "adapters",
        13,
        "AWS SDK, registries, Docker: the only code that sees SDK types",
    ),
    (
        "wiring",
        14,
        "the stages on the real adapters, shared by app and commands",
    ),
    ("commands", 15, "the operator commands"),
    ("app", 16, "the daemon: stages, signals, shutdown"),
    ("manual", 17, "the binary's manual page and completions"),
    ("main", 18, "the binary"),
    (
        "fakes",
        19,
        "test support (unit tests only): in-memory ports and executor builders",
    ),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(m, _, _)| *m == module)
        .map(|(_, l, _)| *l)
}

/// One import found: the line it is on, the top-level module it names, and the path as
/// written after `crate::` (up to a `{` group or the item's end: `deploy::gates::verdicts::`).
#[derive(Debug, PartialEq, Eq)]
struct Import {
    line: usize,
    module: String,
    path: String,
}

impl Import {
    /// An item of a `crate::{…}` group: its first segment, and a path ending in `::` (the
    /// rest of the item is not read), as `crate::deploy::{…}` reads.
    fn named(line: usize, module: String) -> Self {
        Import {
            line,
            path: format!("{module}::"),
            module,
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/deploy/gates/hold.rs` → `deploy`).
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().expect("a file under src/");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

/// Files under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src/ readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `line` without a trailing `// comment` (a `//` after a space: `s3://` stays).
fn code_of(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find(" //") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The modules declared `#[cfg(test)] mod NAME;` in `text`.
fn test_only_children(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if *l != "#[cfg(test)]" {
            continue;
        }
        let next = lines[i + 1..].iter().find(|n| !n.starts_with("#["));
        if let Some(n) = next {
            let n = n
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            if let Some(name) = n.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.push(name.trim().to_owned());
            }
        }
    }
    out
}

/// Every `crate::X` (and `ecr_deployd::X`) in the code of `text`, items under
/// `#[cfg(test)]` left out.
fn imports(text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut skip_next_item = false;
    // A skipped `#[cfg(test)]` item while inside it: its brace depth, and whether its `{`
    // has been seen (a multi-line signature or `use` comes before it, or instead of it).
    let mut skipping: Option<(i64, bool)> = None;
    // Inside a `crate::{ … }` group that spans lines: its depth.
    let mut group: Option<i64> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let code = code_of(raw);
        let t = code.trim();
        if let Some((depth, opened)) = skipping.as_mut() {
            *opened |= code.contains('{');
            *depth += braces(code);
            if (*opened && *depth <= 0) || (!*opened && t.ends_with(';')) {
                skipping = None;
            }
            continue;
        }
        if t == "#[cfg(test)]" {
            skip_next_item = true;
            continue;
        }
        if skip_next_item {
            if t.starts_with("#[") || t.is_empty() {
                continue;
            }
            skip_next_item = false;
            let depth = braces(code);
            let opened = code.contains('{');
            if (opened && depth > 0) || (!opened && !t.ends_with(';')) {
                skipping = Some((depth, opened));
            }
            continue;
        }
        if let Some(depth) = group.as_mut() {
            for name in group_names(code) {
                out.push(Import::named(line, name));
            }
            *depth += braces(code);
            if *depth <= 0 {
                group = None;
            }
            continue;
        }
        for prefix in ["crate::", "ecr_deployd::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                // `$crate::` and `foo_crate::` are not this crate's root.
                if before.is_some_and(|c| c == '$' || c == '_' || c.is_alphanumeric()) {
                    continue;
                }
                if let Some(inner) = rest.strip_prefix('{') {
                    match inner.find('}') {
                        Some(end) => {
                            for name in group_names(&inner[..end]) {
                                out.push(Import::named(line, name));
                            }
                        }
                        None => {
                            for name in group_names(inner) {
                                out.push(Import::named(line, name));
                            }
                            group = Some(1 + braces(inner));
                        }
                    }
                    continue;
                }
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let module: String = path
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !module.is_empty() {
                    out.push(Import { line, module, path });
                }
            }
        }
    }
    out
}

/// The net count of `{` over `}` in `code`.
fn braces(code: &str) -> i64 {
    code.chars().fold(0, |d, c| match c {
        '{' => d + 1,
        '}' => d - 1,
        _ => d,
    })
}

/// The first path segment of each top-level item of a `{a::b, c, d::{e, f}}` group.
fn group_names(inner: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = true;
    let mut current = String::new();
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !current.is_empty() {
                    names.push(std::mem::take(&mut current));
                }
                start = true;
                continue;
            }
            _ => {}
        }
        if depth == 0 && start {
            if c.is_alphanumeric() || c == '_' {
                current.push(c);
                continue;
            }
            if !current.is_empty() {
                names.push(std::mem::take(&mut current));
                start = false;
            }
        }
    }
    if !current.is_empty() {
        names.push(current);
    }
    names.retain(|n| n != "self");
    names
}

/// The files under `src` that are not test code, sorted.
fn code_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut exempt: BTreeSet<PathBuf> = BTreeSet::new();
    for f in &files {
        let text = fs::read_to_string(f).expect("source readable");
        let dir = match f.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs" | "main.rs") => f.parent().expect("parent").to_path_buf(),
            _ => f.with_extension(""),
        };
        for child in test_only_children(&text) {
            exempt.insert(dir.join(format!("{child}.rs")));
            exempt.insert(dir.join(&child));
        }
    }
    let is_exempt = |f: &Path| {
        matches!(
            f.file_name().and_then(|n| n.to_str()),
            Some("tests.rs" | "fakes.rs")
        ) || exempt.iter().any(|e| f.starts_with(e))
    };
    files.retain(|f| !is_exempt(f));
    files
}

/// Every import in `src/` that does not run down, as `file:line: …` lines.
fn violations(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in &code_files(src) {
        let rel = f.strip_prefix(src).expect("under src/");
        if rel == Path::new("lib.rs") {
            continue;
        }
        let from = module_of(rel);
        let Some(from_layer) = layer(&from) else {
            out.push(format!(
                "src/{}: module `{from}` has no layer in LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = fs::read_to_string(f).expect("source readable");
        for Import { line, module, .. } in imports(&text) {
            if module == from || module == "self" || module == "super" {
                continue;
            }
            match layer(&module) {
                None => out.push(format!(
                    "src/{}:{line}: `{from}` imports `{module}`, which has no layer in LAYERS",
                    rel.display()
                )),
                Some(to_layer) if to_layer >= from_layer => out.push(format!(
                    "src/{}:{line}: `{from}` (layer {from_layer}) imports `{module}` (layer {to_layer}): \
                     imports must run down the pipeline",
                    rel.display()
                )),
                Some(_) => {}
            }
        }
    }
    out
}

/// The folders of `src/deploy/`, bottom first: the swap sequence and its executor; the gates
/// and the neighbourhood, which extend the executor (`impl Executor` blocks of their own);
/// the operator's actions over all of them. Keep `src/deploy/mod.rs` in step.
const DEPLOY_LAYERS: &[(&str, u32)] = &[
    ("sequence", 0),
    ("gates", 1),
    ("neighbourhood", 1),
    ("operator", 2),
];

/// Whether `file` is a pure value file: it names nothing of `deploy/` — no `crate::deploy`
/// path and no `super::` — so importing it can close no circle.
fn is_value_file(file: &Path) -> bool {
    let Ok(text) = fs::read_to_string(file) else {
        return false;
    };
    imports(&text).iter().all(|i| i.module != "deploy")
        && !text.lines().any(|l| code_of(l).contains("super::"))
}

/// The file a `deploy::G::a::b::Item` path lands in: the longest prefix that is a file.
fn file_of(src: &Path, segments: &[&str]) -> Option<PathBuf> {
    (1..=segments.len()).rev().find_map(|n| {
        let mut f = src.to_path_buf();
        f.extend(&segments[..n]);
        let f = f.with_extension("rs");
        f.is_file().then_some(f)
    })
}

/// Imports between `deploy/`'s folders that do not run down [`DEPLOY_LAYERS`]: one from a
/// folder's own layer or above must land in a pure value file (the gates' verdicts).
fn deploy_violations(src: &Path) -> Vec<String> {
    let layer_of = |m: &str| DEPLOY_LAYERS.iter().find(|(d, _)| *d == m).map(|(_, l)| *l);
    let mut out = Vec::new();
    for f in &code_files(src) {
        let rel = f.strip_prefix(src).expect("under src/");
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        if parts.next().as_deref() != Some("deploy") {
            continue;
        }
        let Some(from) = parts.next() else { continue };
        if from == "mod.rs" {
            continue; // the stage's re-exports
        }
        let Some(from_layer) = layer_of(&from) else {
            out.push(format!(
                "src/{}: deploy/{from} has no layer in DEPLOY_LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = fs::read_to_string(f).expect("source readable");
        for Import { line, path, .. } in imports(&text) {
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            if segments == ["deploy"] && path.ends_with("::") {
                // `crate::deploy::{…}` or `crate::{deploy::…}`: the group's folders are not read.
                out.push(format!(
                    "src/{}:{line}: deploy/{from} imports from deploy/ through a group; name the \
                     folder in the path (`crate::deploy::gates::…`) so its direction is checked",
                    rel.display()
                ));
                continue;
            }
            let (Some(&"deploy"), Some(&to)) = (segments.first(), segments.get(1)) else {
                continue;
            };
            if to == from {
                continue;
            }
            let down = layer_of(to).is_some_and(|l| l < from_layer);
            if !down && !file_of(src, &segments).is_some_and(|t| is_value_file(&t)) {
                out.push(format!(
                    "src/{}:{line}: deploy/{from} imports `{path}` from deploy/{to}, not below it \
                     and not a pure value file",
                    rel.display()
                ));
            }
        }
    }
    out
}

#[test]
fn the_deploy_stage_s_folders_import_only_down_or_pure_values() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = deploy_violations(&src);
    assert!(
        bad.is_empty(),
        "{} import(s) in deploy/:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a_circle_between_deploy_folders_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let f = src.join(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, text).unwrap();
    };
    write(
        "deploy/sequence/executor.rs",
        "use crate::deploy::gates::hold::Held;\npub struct Executor;\n",
    );
    write(
        "deploy/gates/hold.rs",
        "use crate::deploy::sequence::executor::Executor;\npub enum Held {}\n",
    );
    write("deploy/gates/verdicts.rs", "pub enum Gate {}\n");
    write(
        "deploy/sequence/swap.rs",
        "use crate::deploy::gates::verdicts::{Gate};\n",
    );
    write(
        "deploy/operator/mod.rs",
        "use crate::deploy::gates::hold::Held;\n",
    );
    write("deploy/stray/x.rs", "pub struct X;\n");
    write("deploy/loose.rs", "pub struct Y;\n");
    // The same upward import written as groups, which the parser does not open.
    write(
        "deploy/sequence/rollback.rs",
        "use crate::deploy::{gates::hold::Held};\nuse crate::{deploy::gates::hold::Held};\n",
    );
    let bad = deploy_violations(&src);
    // executor → hold (which imports the executor) is the circle; swap → the pure verdicts,
    // hold → the executor (down) and operator → hold (down) are not.
    let found = |text: &str| bad.iter().filter(|b| b.contains(text)).count();
    assert_eq!(bad.len(), 5, "{bad:#?}");
    assert_eq!(
        found(
            "src/deploy/sequence/executor.rs:1: deploy/sequence imports `deploy::gates::hold::Held`"
        ),
        1,
        "{bad:#?}"
    );
    assert_eq!(found("deploy/stray has no layer"), 1, "{bad:#?}");
    assert_eq!(found("deploy/loose.rs has no layer"), 1, "{bad:#?}");
    assert_eq!(
        found("rollback.rs:1: deploy/sequence imports from deploy/ through a group"),
        1,
        "{bad:#?}"
    );
    assert_eq!(
        found("rollback.rs:2: deploy/sequence imports from deploy/ through a group"),
        1,
        "{bad:#?}"
    );
}

#[test]
fn imports_run_only_down_the_pipeline() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "{} import(s) run back up:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src/");
        let m = module_of(rel);
        assert!(
            m == "lib" || layer(&m).is_some(),
            "src/{}: `{m}` has no layer",
            rel.display()
        );
    }
}

#[test]
fn the_scanner_reads_inline_grouped_and_multi_line_paths_and_skips_test_items() {
    let text = "\
use crate::event::Digest;
use crate::{config, ports::Queue};
//! [`crate::app`] in a doc is not an import
let x = crate::store::now_ms(); // crate::wiring in a comment is not either
macro_rules! m { () => { $crate::model::Step } }
use crate::{
    deploy::hold,
    notify,
};
#[cfg(test)]
use crate::deploy::fakes;
#[cfg(test)]
mod tests {
    use crate::app::Agent;
}
#[cfg(test)]
fn helper(
    a: crate::reconcile::Reconciler,
) {
    crate::app::run();
}
use ecr_deployd::commands;
";
    let found = imports(text);
    let got: Vec<(usize, &str)> = found.iter().map(|i| (i.line, i.module.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "event"),
            (2, "config"),
            (2, "ports"),
            (4, "store"),
            (7, "deploy"),
            (8, "notify"),
            (22, "commands"),
        ]
    );
    assert_eq!(
        test_only_children(
            "#[cfg(test)]\nmod recorded;\n#[cfg(test)]\npub(crate) mod fakes;\nmod real;\n"
        ),
        vec!["recorded", "fakes"]
    );
}
