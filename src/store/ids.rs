//! Random ids: session ids (see `partition::Partitions::new_sid`), refresh
//! secrets and the bench's run ids. It sits in the store, the lowest layer
//! that needs it; the authority re-exports it (`service::random_b64`), so no
//! arrow points from the store back up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;

/// `N` random bytes, base64url, from the thread-local CSPRNG (ChaCha12,
/// seeded and periodically reseeded from the OS): the same strength as the
/// OS source for session ids and secrets, without a `getrandom` system call
/// per draw (two per Issue had cost ~1 µs).
pub fn random_b64<const N: usize>() -> String {
    let mut buf = [0u8; N];
    rand::thread_rng().fill_bytes(&mut buf);
    B64.encode(buf)
}
