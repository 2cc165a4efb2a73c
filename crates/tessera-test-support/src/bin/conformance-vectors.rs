//! `conformance-vectors OUTDIR`: write the conformance vectors and their
//! signing key (see `tessera_test_support::vectors`).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: conformance-vectors OUTDIR");
        std::process::exit(64);
    };
    match tessera_test_support::vectors::write(std::path::Path::new(&dir)) {
        Ok(v) => println!(
            "{} cases, {} valid tokens, {} tenant-key cases in {}",
            v["cases"].as_array().map_or(0, Vec::len),
            v["valid"].as_array().map_or(0, Vec::len),
            v["tenant"]["cases"].as_array().map_or(0, Vec::len),
            std::path::Path::new(&dir).display()
        ),
        Err(e) => {
            eprintln!("conformance-vectors: {e}");
            std::process::exit(1);
        }
    }
}
