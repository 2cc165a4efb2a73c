//! Code generation only: the gRPC stubs and the descriptor set for reflection.
//! `protoc` comes from `protoc-bin-vendored`, so a fresh machine needs none.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; this only informs prost-build.
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("tessera_descriptor.bin"))
        .compile_protos(&["proto/tessera/v1/tessera.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
