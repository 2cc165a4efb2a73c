//! Memory per cached revocation (issue 8 target: ≤ 150 bytes per entry),
//! measured as the RSS growth of this test process while 1,000,000 token
//! revocations are applied to a revocation cache.

use tessera::feed::{Feed, RING_CAPACITY};
use tessera::store::{RevocationEvent, RevocationKind};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn a_cached_revocation_costs_at_most_150_bytes() {
    const N: usize = 1_000_000;
    let now = tessera::clock::now_ms();
    let event = |i: usize| RevocationEvent {
        cursor: format!("{now}-{i}"),
        partition: 0,
        kind: RevocationKind::Token,
        // A real jti: 22 base64url characters.
        token_id: format!("{i:0>22}"),
        session_id: String::new(),
        tenant: String::new(),
        subject: String::new(),
        subject_key: String::new(),
        revoked_at_ms: now,
        issued_before_ms: 0,
        expires_at_ms: now + 3_600_000,
        traceparent: String::new(),
    };
    let feed = Feed::new(1);
    // Fill the bounded ring first, so what grows afterwards is the cache alone.
    let warm: Vec<RevocationEvent> = (0..RING_CAPACITY).map(|i| event(N + i)).collect();
    feed.apply(&warm);
    drop(warm);
    let before = rss_bytes();
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<RevocationEvent> = chunk.iter().map(|&i| event(i)).collect();
        feed.apply(&batch);
    }
    let after = rss_bytes();
    assert_eq!(feed.cached_entries(), N + RING_CAPACITY);
    let per_entry = (after.saturating_sub(before)) as f64 / N as f64;
    println!(
        "revocation cache: {per_entry:.1} bytes per entry ({N} entries, RSS +{} MiB)",
        (after - before) >> 20
    );
    assert!(
        per_entry <= 150.0,
        "{per_entry:.1} bytes per cached revocation"
    );
}
