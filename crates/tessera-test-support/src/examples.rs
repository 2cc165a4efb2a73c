//! Programs run to completion: the example programs' JSON-lines steps, and
//! a binary's JSON output.

use std::path::Path;

/// The JSON-lines output of an example program: one object per step, each
/// with a `step` name.
pub struct Steps {
    label: String,
    lines: Vec<serde_json::Value>,
}

impl Steps {
    pub fn parse(label: &str, stdout: &[u8]) -> Steps {
        let lines = String::from_utf8_lossy(stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{label}: {l}: {e}")))
            .collect();
        Steps {
            label: label.to_owned(),
            lines,
        }
    }

    /// The step called `name`; panics (listing them all) if there is none.
    pub fn get(&self, name: &str) -> serde_json::Value {
        self.lines
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("{}: no step {name}: {:?}", self.label, self.lines))
            .clone()
    }
}

/// Run `node examples/node/<script> args…` with `env` to completion and
/// answer its steps; panics with its output if it failed, or if the Node
/// modules are missing (`scripts/test` runs `npm ci` there).
pub fn node_steps(script: &str, args: &[&str], env: &[(&str, &str)]) -> Steps {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node");
    assert!(
        dir.join("node_modules").exists(),
        "node modules missing: run scripts/test (npm ci in examples/node)"
    );
    let out = std::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Steps::parse(script, &out.stdout)
}

/// Run `program` with `args` to completion: (success, its JSON output, from
/// stdout or else stderr, all its output). For the binaries' own tests
/// (`tessera`, `tessera-bench`).
pub fn run_json(program: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .or_else(|_| serde_json::from_str(&stderr))
        .unwrap_or(serde_json::Value::Null);
    (out.status.success(), json, format!("{stdout}{stderr}"))
}
