use super::*;
use std::collections::BTreeSet;

/// Every script, by file name.
const SCRIPTS: &[(&str, &str)] = &[
    ("batch.lua", include_str!("../scripts/batch.lua")),
    ("common.lua", include_str!("../scripts/common.lua")),
    ("create.lua", include_str!("../scripts/create.lua")),
    ("gcra.lua", include_str!("../scripts/gcra.lua")),
    ("list.lua", include_str!("../scripts/list.lua")),
    ("owner.lua", include_str!("../scripts/owner.lua")),
    ("rate.lua", include_str!("../scripts/rate.lua")),
    ("renew.lua", include_str!("../scripts/renew.lua")),
    ("revoke.lua", include_str!("../scripts/revoke.lua")),
    ("rotate.lua", include_str!("../scripts/rotate.lua")),
];

/// The string literals of a script that look like key prefixes:
/// lower-case words each followed by a colon (`'s:'`, `'rl:refresh:'`).
fn key_prefixes(script: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in script.lines() {
        let code = line.split("--").next().unwrap_or_default();
        for quote in ['\'', '"'] {
            let parts: Vec<&str> = code.split(quote).collect();
            // Odd-numbered parts sit between a pair of quotes.
            for literal in parts.iter().skip(1).step_by(2).take(parts.len() / 2) {
                let words: Vec<&str> = literal.split(':').collect();
                let shaped = literal.ends_with(':')
                    && words[..words.len() - 1]
                        .iter()
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
                if shaped {
                    found.push((*literal).to_owned());
                }
            }
        }
    }
    found
}

#[test]
fn lua_key_prefixes_are_the_schemas() {
    let schema: BTreeSet<String> = [
        session(""),
        session_marker(""),
        token_marker(""),
        subject_cutoff(""),
        subject_index(""),
        creation_index(""),
        adoption_mark(""),
        sealed_successor(""),
        renewal(""),
        dpop_proof(""),
        shared(""),
        rate(&issue_budget("")),
        rate(&refresh_budget("")),
    ]
    .into();
    let mut used = BTreeSet::new();
    for (name, text) in SCRIPTS {
        for prefix in key_prefixes(text) {
            assert!(
                schema.contains(&prefix),
                "{name} spells the key prefix {prefix:?}, which src/store/schema.rs does not define"
            );
            used.insert(prefix);
        }
    }
    // The scan itself works: the prefixes the scripts are known to build.
    for known in [
        "s:",
        "rs:",
        "ru:",
        "ss:",
        "sc:",
        "sm:",
        "sl:",
        "rl:refresh:",
    ] {
        assert!(used.contains(known), "no script spells {known:?}: {used:?}");
    }
}

#[test]
fn every_script_is_scanned() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/scripts");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("the scripts folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".lua"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = SCRIPTS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, listed, "a script is missing from SCRIPTS");
}

#[test]
fn the_scan_finds_prefixes_and_only_them() {
    let found = key_prefixes("local k = p .. 's:' .. id -- 'xx:' in a comment\nlocal s = 'a b:' .. \"rl:refresh:\" .. ':'");
    assert_eq!(found, vec!["s:".to_owned(), "rl:refresh:".to_owned()]);
}
