//! Request validation on arbitrary protobuf bytes: decoding and validating
//! Issue and Verify requests must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tessera::pb;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = pb::IssueRequest::decode(data) {
        let accepted = tessera::authority::check_issue_request(r.clone()).is_ok();
        if accepted {
            assert!(!r.subject.is_empty() && r.subject.len() <= 256);
        }
    }
    if let Ok(r) = pb::VerifyRequest::decode(data) {
        let _ = tessera::authority::check_verify_request(r);
    }
});
