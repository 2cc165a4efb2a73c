//! The checked-in client stubs (`src/pb/tessera.v1.rs`) are exactly what
//! the repository's proto generates. To regenerate after changing the proto:
//! `TESSERA_REGENERATE_STUBS=1 cargo test -p tessera-client --test stubs`.

use std::path::Path;

#[test]
fn checked_in_stubs_match_the_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("tempdir");
    std::env::set_var(
        "PROTOC",
        protoc_bin_vendored::protoc_bin_path().expect("protoc"),
    );
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(out.path())
        .compile_protos(
            &[root.join("../../proto/tessera/v1/tessera.proto")],
            &[root.join("../../proto")],
        )
        .expect("generate");
    let fresh = std::fs::read_to_string(out.path().join("tessera.v1.rs")).expect("generated");
    let checked_in_path = root.join("src/pb/tessera.v1.rs");
    if std::env::var_os("TESSERA_REGENERATE_STUBS").is_some() {
        std::fs::write(&checked_in_path, &fresh).expect("write stubs");
    }
    let checked_in = std::fs::read_to_string(&checked_in_path).expect("checked-in stubs");
    assert!(
        fresh == checked_in,
        "src/pb/tessera.v1.rs is stale: TESSERA_REGENERATE_STUBS=1 cargo test -p tessera-client --test stubs"
    );
}
