//! Client-only stubs for `tessera.v1`, generated from the repository's proto
//! (protoc from protoc-bin-vendored: a fresh machine needs none).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single-threaded; this only informs prost-build.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["../../proto/tessera/v1/tessera.proto"], &["../../proto"])?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
