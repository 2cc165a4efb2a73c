//! "Log out my other devices" on Redis: `revoke.lua` kind `x`, one bounded
//! batch per call ([`crate::store::schema::LOG_OUT_OTHERS_BATCH`] sessions), called
//! until it says none remain. Each call is about a millisecond of Redis
//! time however many sessions the subject holds (issue #32: one script of
//! 100,000 revocations held Redis for 3.6 s); the calls are not atomic
//! together, which nothing needs: each session's revocation is.

use super::schema::ScriptCall;
use super::{script_error, RedisStore};
use crate::store::event_ref;
use crate::store::StoreError;

/// Calls one log-out-others makes at most (2,000,000 sessions).
const MAX_CALLS: usize = 100_000;

impl RedisStore {
    /// Revoke every other session of the subject in batches; the last
    /// event's reference, or `None` when there was nobody else to log out.
    pub(super) async fn revoke_others(
        &self,
        partition: u32,
        prefix: &str,
        call: ScriptCall,
    ) -> Result<Option<String>, StoreError> {
        let mut last = None;
        // A safety net, never reached in practice: a subject at the largest
        // cap is ~50 calls, and a pass adopting legacy sessions a few more.
        for _ in 0..MAX_CALLS {
            let (id, more): (String, String) = self
                .revoke
                .evalsha_with_reload(self.revoker(), call.keys.clone(), call.args.clone())
                .await
                .map_err(script_error)?;
            if !id.is_empty() {
                last = Some(id);
            }
            if more != "1" {
                break;
            }
        }
        if let Some(id) = &last {
            self.await_replicas(prefix, id).await?;
        }
        Ok(last.map(|id| event_ref(partition, &id)))
    }
}
