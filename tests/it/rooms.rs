//! Rooms stay small (issue #31): no source file over 550 lines and no
//! function over 80, in the server, the core, the SDK, the load generator
//! and the test support (generated stubs aside). Tests themselves are not
//! counted: a test file is a list of cases.
//!
//! A function's length is counted from its `fn` line to its closing brace
//! (braces in comments and plain string literals aside).

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 550;
const MAX_FN_LINES: usize = 80;

/// The trees whose rooms are measured, from the workspace root.
const TREES: &[&str] = &[
    "src",
    "crates/tessera-core/src",
    "crates/tessera-test-support/src",
    "crates/tessera-bench/src",
    "clients/rust/src",
];

/// Functions still over the limit, each to be split; the check fails on
/// any other, and on an entry that no longer needs to be here.
const KNOWN: &[(&str, &str)] = &[];

/// Files still over the limit, each to be split (the same rules).
const KNOWN_FILES: &[&str] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let generated = path.file_name().is_some_and(|n| n == "pb");
        if path.is_dir() && !generated {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line: without its `//` comment and with the insides of
/// plain string literals blanked, so their braces do not count.
fn code_of(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                // Skip to the closing quote, past escaped ones.
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            '/' if chars.get(i + 1) == Some(&'/') => break,
            // A char literal (`'{'`) is not code.
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 2,
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The name of the function a line opens, if it opens one.
fn fn_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().skip_while(|w| {
        w.starts_with("pub") || ["async", "const", "unsafe", "extern", "\"C\""].contains(w)
    });
    (words.next()? == "fn").then_some(())?;
    let name = words.next()?;
    Some(name.split(['(', '<']).next().unwrap_or(name))
}

/// `(name, first line, length)` of every function in `text` over `max`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let mut depth = 0i32;
        let mut opened = false;
        for (end, body) in lines.iter().enumerate().skip(start) {
            for c in body.chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // A declaration without a body (a trait's) ends at its `;`.
            if !opened && body.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                let len = end - start + 1;
                if len > max {
                    found.push((name.to_owned(), start + 1, len));
                }
                break;
            }
        }
    }
    found
}

#[test]
fn no_room_is_too_big() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for tree in TREES {
        rust_files(&root.join(tree), &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    let mut still_known = vec![false; KNOWN.len()];
    let mut still_known_files = vec![false; KNOWN_FILES.len()];
    for file in files {
        let rel = file.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        match KNOWN_FILES.iter().position(|k| *k == rel) {
            Some(k) if lines > MAX_FILE_LINES => still_known_files[k] = true,
            _ if lines > MAX_FILE_LINES => {
                out.push(format!("{rel}: {lines} lines (at most {MAX_FILE_LINES})"))
            }
            _ => {}
        }
        for (name, at, len) in long_functions(&text, MAX_FN_LINES) {
            match KNOWN
                .iter()
                .position(|k| *k == (rel.as_str(), name.as_str()))
            {
                Some(k) => still_known[k] = true,
                None => out.push(format!(
                    "{rel}:{at}: fn {name} is {len} lines (at most {MAX_FN_LINES})"
                )),
            }
        }
    }
    for ((file, name), _) in KNOWN.iter().zip(still_known).filter(|(_, used)| !used) {
        out.push(format!(
            "{file}: fn {name} is short now: remove it from KNOWN"
        ));
    }
    for (file, _) in KNOWN_FILES
        .iter()
        .zip(still_known_files)
        .filter(|(_, used)| !used)
    {
        out.push(format!("{file} is short now: remove it from KNOWN_FILES"));
    }
    assert!(out.is_empty(), "rooms too big:\n{}", out.join("\n"));
}

#[test]
fn the_measure_counts_bodies_not_braces_in_text() {
    let text = "pub async fn a(x: u8) -> u8 {\n    let s = \"}}}\"; // }\n    let c = '{';\n    x\n}\nfn b();\n";
    assert_eq!(long_functions(text, 4), vec![("a".to_owned(), 1, 5)]);
    assert!(long_functions(text, 5).is_empty());
    assert_eq!(fn_name("    pub(crate) const fn go<T>("), Some("go"));
    assert_eq!(fn_name("let f = fn_name(x);"), None);
}
