//! The fuzz seed corpus, replayed on every test run: the seeds must keep
//! their meaning (the valid one verifies, the others do not), and no input a
//! fuzzer ever saved may panic. Findings of fuzz runs are added here.

use tessera::keys::KeySet;
use tessera::tokens::{self, VerifyPolicy};

/// The fixed test-only key of fuzz/fuzz_targets/verify_token.rs.
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
const NOW: i64 = 1_800_000_000;

#[test]
fn token_seeds_keep_their_meaning() {
    let keys = KeySet::from_bytes(PEM.as_bytes(), None, "fuzz").unwrap();
    let policy = VerifyPolicy {
        issuer: "fuzz".into(),
        leeway: 30,
    };
    let dir = format!("{}/fuzz/seeds/verify_token", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = tokens::verify(&keys, &text, NOW, &policy);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(result.is_ok(), name == "valid", "{name}: {result:?}");
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn request_seeds_decode_and_validate() {
    use prost::Message;
    let dir = format!(
        "{}/fuzz/seeds/request_validation",
        env!("CARGO_MANIFEST_DIR")
    );
    let issue = std::fs::read(format!("{dir}/issue")).unwrap();
    let r = tessera::pb::IssueRequest::decode(issue.as_slice()).unwrap();
    tessera::authority::check_issue_request(r).expect("seed Issue is valid");
    let verify = std::fs::read(format!("{dir}/verify")).unwrap();
    let r = tessera::pb::VerifyRequest::decode(verify.as_slice()).unwrap();
    tessera::authority::check_verify_request(r).expect("seed Verify is valid");
}
