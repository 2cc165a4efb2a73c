//! The server's layers (issue #31): a file may import its own layer and
//! those below it, never one above. Arrows point down only:
//!
//! ```text
//! assembly   lib.rs, main.rs, app/, config/, keyload/, signals.rs, cli/, bin/
//! transport  transport/ (gRPC wiring, oauth, admin, web, TLS, callers)
//! authority  authority/ (one file per RPC, policy, tenancy), error.rs (its
//!            errors and their gRPC mapping, store errors included)
//! feed       feed/
//! store      store/, cursor.rs
//! base       trace, telemetry, audit, refusals, clock
//! ```
//!
//! The check reads `src/**/*.rs`, maps each file to its layer and each
//! `crate::<module>` path in its code (comments aside) to the layer of that
//! module, and fails on an arrow that points up, printing the line.

use std::path::{Path, PathBuf};

/// Layers, lowest first.
const LAYERS: [&str; 6] = [
    "base",
    "store",
    "feed",
    "authority",
    "transport",
    "assembly",
];

/// The layer of a top-level module of the server crate.
fn layer_of_module(module: &str) -> Option<usize> {
    let name = match module {
        "trace" | "telemetry" | "audit" | "refusals" | "clock" | "pb" | "keys" | "tokens" => "base",
        "store" | "cursor" => "store",
        "feed" => "feed",
        "authority" | "error" => "authority",
        "transport" => "transport",
        "config" | "keyload" | "signals" | "cli" | "app" => "assembly",
        _ => return None,
    };
    LAYERS.iter().position(|l| *l == name)
}

/// The layer of a file, by its path under `src/`.
fn layer_of_file(rel: &Path) -> usize {
    let first = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    let module = first.strip_suffix(".rs").unwrap_or(first);
    match module {
        "lib" | "main" | "bin" => LAYERS.len() - 1,
        m => layer_of_module(m)
            .unwrap_or_else(|| panic!("{}: no layer for module {m:?}", rel.display())),
    }
}

/// Arrows that still point up, each with the work that removes it (none
/// since the second step of #31: keep it so).
/// Remove an entry when its edge goes; the check fails on any other.
const KNOWN: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line number, line, target module)` of every upward `crate::` path in
/// `text`, a file of layer `own`.
fn upward(text: &str, own: usize) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            // `tessera_core::` and other crates' `crate::` stay out.
            let before = &rest[..at];
            let ours = !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            // `crate::{a, b::c}` names several modules at once.
            let modules: Vec<String> = match tail.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").to_owned())
                    .collect(),
                None => vec![tail
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()],
            };
            for module in modules.into_iter().filter(|_| ours) {
                if let Some(target) = layer_of_module(&module) {
                    if target > own {
                        found.push((n + 1, line.trim().to_owned(), module));
                    }
                }
            }
            rest = tail;
        }
    }
    found
}

/// Every upward import not in `KNOWN`, and every `KNOWN` entry whose
/// edge is gone (the list must shrink as the work lands).
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    let mut still_known = vec![false; KNOWN.len()];
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let own = layer_of_file(rel);
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line, module) in upward(&text, own) {
            let name = rel.display().to_string();
            if let Some(k) = KNOWN
                .iter()
                .position(|(f, m)| *f == name.as_str() && *m == module.as_str())
            {
                still_known[k] = true;
                continue;
            }
            out.push(format!(
                "src/{name}:{n} ({} imports {module}, a {} module): {line}",
                LAYERS[own],
                LAYERS[layer_of_module(&module).unwrap()],
            ));
        }
    }
    for ((file, module), _) in KNOWN.iter().zip(still_known).filter(|(_, used)| !used) {
        out.push(format!(
            "src/{file} no longer imports {module}: remove it from KNOWN"
        ));
    }
    out
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports that point up a layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_an_upward_import() {
    let store = LAYERS.iter().position(|l| *l == "store").unwrap();
    let text = "use crate::trace::Span;\nlet id = crate::authority::random_b64::<15>();\n// crate::transport in a comment\n";
    let found = upward(text, store);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 2);
    assert_eq!(found[0].2, "authority");
    assert!(upward("use tessera_core::wire;", store).is_empty());
    let group = upward("use crate::{clock, feed::Feed};", store);
    assert_eq!(group.len(), 1, "{group:?}");
    assert_eq!(group[0].2, "feed");
}
