//! `WatchRevocations` cursors over the partitioned revocation log: the
//! position type and its codec are the token core's
//! ([`tessera_core::cursor`]), shared with clients that read cursors; the
//! names stay here because the store, the feed and the tests know them by
//! `crate::cursor`.

pub use tessera_core::cursor::{LocalId, Position, MAX_CURSOR_BYTES};
pub use tessera_core::partition::MAX_PARTITIONS;
