//! Code generation (the gRPC stubs and the descriptor set for reflection) and
//! the build's commit for `tessera_build_info`. `protoc` comes from
//! `protoc-bin-vendored`, so a fresh machine needs none.

use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; this only informs prost-build.
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("tessera_descriptor.bin"))
        .compile_protos(&["proto/tessera/v1/tessera.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rustc-env=TESSERA_BUILD_COMMIT={}", commit());
    Ok(())
}

/// The commit being built: `TESSERA_BUILD_COMMIT` when set (a container
/// build without `.git`), else `git rev-parse --short HEAD`, else
/// `unknown`. A build without git never fails for it.
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=TESSERA_BUILD_COMMIT");
    if let Ok(commit) = std::env::var("TESSERA_BUILD_COMMIT") {
        if !commit.trim().is_empty() {
            return commit.trim().to_owned();
        }
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // Rebuild when HEAD moves: HEAD itself, and the branch it points to
    // (loose ref or packed-refs), wherever this checkout keeps them.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    commit
}
