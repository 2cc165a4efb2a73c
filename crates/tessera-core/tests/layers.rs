//! The core's modules import one another one way only: this test reads
//! `src/**/*.rs`, draws an edge for every path into another module of the
//! crate (`crate::…`, `super::…`, `self::…`, or a child module's name), and
//! fails on any cycle, printing it.
//!
//! Test code (an inline `#[cfg(test)] mod tests { … }` to the end of its
//! file, and `tests.rs` files) is left out: nothing imports a test module, so it can
//! never close a cycle. Comments are left out too: a doc link is not an
//! import. A module's declaration of its children (`mod x;`) is containment,
//! not an edge; a `pub use x::…` re-export is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `keys::lookup` for `src/keys/lookup.rs`, `keys` for `src/keys/mod.rs`,
/// `crate` for `src/lib.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        parts.join("::")
    }
}

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

/// The file's non-test code without comments.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // `mod tests;` declares a test file (left out); `mod tests {`
            // starts the test code, which runs to the end of the file.
            match lines.next() {
                Some(next) if next.trim_end().ends_with(';') => continue,
                _ => break,
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = line.find(" // ").map_or(line, |i| &line[..i]);
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path in `code` that starts with one of `roots`, as its segments;
/// a `{…}` group expands into one path per member.
fn paths(code: &str, roots: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        if starts_word && is_ident(chars[i]) {
            let mut j = i;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if roots.contains(&word) && chars.get(j..j + 2) == Some(&[':', ':']) {
                let (segments, end) = path_from(&chars, i, &mut found);
                found.push(segments);
                i = end;
                continue;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    found
}

/// The path starting at `start`; members of a group go into `found`.
fn path_from(chars: &[char], start: usize, found: &mut Vec<Vec<String>>) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let s = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        segments.push(chars[s..i].iter().collect::<String>());
        if chars.get(i..i + 2) != Some(&[':', ':']) {
            return (segments, i);
        }
        i += 2;
        if chars.get(i) == Some(&'{') {
            // One path per member of the group, each prefixed by this one.
            i += 1;
            loop {
                while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                    i += 1;
                }
                if i >= chars.len() || chars[i] == '}' {
                    return (segments, i + 1);
                }
                let (member, end) = path_from(chars, i, found);
                let mut full = segments.clone();
                full.extend(member);
                found.push(full);
                i = end;
                // Skip an `as` rename up to the next member.
                while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                    i += 1;
                }
            }
        }
    }
}

/// The module a path names: the longest prefix that is a module.
fn resolve(from: &str, segments: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<String> = match segments[0].as_str() {
        "crate" => vec![],
        "self" => module_path(from),
        "super" => {
            let mut p = module_path(from);
            p.pop();
            p
        }
        child => {
            let mut p = module_path(from);
            p.push(child.to_owned());
            p
        }
    };
    let rest = &segments[1..];
    let mut best = if base.is_empty() {
        "crate".to_owned()
    } else {
        base.join("::")
    };
    for segment in rest {
        if segment == "super" {
            base.pop();
            continue;
        }
        base.push(segment.clone());
        let name = base.join("::");
        if modules.contains(&name) {
            best = name;
        }
    }
    modules.contains(&best).then_some(best)
}

fn module_path(module: &str) -> Vec<String> {
    if module == "crate" {
        vec![]
    } else {
        module.split("::").map(str::to_owned).collect()
    }
}

fn import_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let files: Vec<(String, String)> = files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|f| (module_of(src, f), std::fs::read_to_string(f).unwrap()))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, text) in &files {
        let code = code_of(text);
        let mut roots: BTreeSet<String> = ["crate", "super", "self"].map(String::from).into();
        // A child module's own name starts a path too (`pub use alg::KeyAlg`).
        for m in &modules {
            let prefix = if module == "crate" {
                String::new()
            } else {
                format!("{module}::")
            };
            if let Some(child) = m.strip_prefix(&prefix) {
                if !child.contains("::") && !child.is_empty() && m != module {
                    roots.insert(child.to_owned());
                }
            }
        }
        let edges = graph.entry(module.clone()).or_default();
        for path in paths(&code, &roots) {
            if let Some(target) = resolve(module, &path, &modules) {
                if &target != module {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// A cycle of `graph`, as the modules along it, first repeated last.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn core_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> = graph
            .iter()
            .map(|(m, to)| {
                format!(
                    "  {m} -> {}",
                    to.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        panic!(
            "import cycle in tessera-core: {}\nthe graph:\n{}",
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
}

#[test]
fn the_check_sees_edges_and_cycles() {
    // The graph is drawn from the real sources: known edges are in it.
    let graph = import_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let has = |from: &str, to: &str| graph.get(from).is_some_and(|t| t.contains(to));
    assert!(has("tokens", "claims"), "{graph:#?}");
    assert!(has("jwks", "keys::lookup"), "{graph:#?}");
    assert!(has("keys", "jwks"), "{graph:#?}");
    assert!(has("keys::keyset", "keys::alg"), "{graph:#?}");
    // And a back edge makes a cycle it reports.
    let mut with_back_edge = graph.clone();
    with_back_edge
        .entry("claims".to_owned())
        .or_default()
        .insert("tokens".to_owned());
    let cycle = find_cycle(&with_back_edge).expect("a cycle");
    assert!(cycle.contains(&"tokens".to_owned()) && cycle.contains(&"claims".to_owned()));
}
