//! The deployment's layout in Redis (partition count and deployment id,
//! [`schema::META`]), checked once, and the routing of keys to partitions
//! after that check.

use super::{schema, RedisStore, StoreError};

/// Write the layout if there is none; reply the one in force.
pub(super) const META_LUA: &str = "redis.call('HSETNX', KEYS[1], 'partitions', ARGV[1])
redis.call('HSETNX', KEYS[1], 'deployment', ARGV[2])
return redis.call('HMGET', KEYS[1], 'partitions', 'deployment')";

impl RedisStore {
    /// The deployment id, after checking (once) that the layout in Redis is
    /// ours: written by the first replica, refused when it differs.
    pub(super) async fn layout(&self) -> Result<u64, StoreError> {
        if let Some(id) = self.deployment.get() {
            return Ok(*id);
        }
        // Boxed: the check runs once per replica, and inline its future
        // (Redis round trips, several KB) would be part of every store
        // call's future.
        Box::pin(self.deployment.get_or_try_init(|| async {
                super::connect::check_version(&self.client).await?;
                let candidate = crate::store::partition::new_deployment_id().to_string();
                let reply: Vec<String> = self
                    .script(
                        &self.meta_script,
                        vec![schema::META.to_owned()],
                        vec![self.parts.count().into(), candidate.into()],
                    )
                    .await?;
                let [count, deployment] = reply.as_slice() else {
                    return Err(StoreError::Corrupt("unexpected layout reply".into()));
                };
                if *count != self.parts.count().to_string() {
                    let message = format!(
                        "this Redis holds a Tessera deployment of {count} partitions, and this replica was started with --redis-partitions {}: start it with --redis-partitions {count} (the count cannot change while sessions live)",
                        self.parts.count()
                    );
                    tracing::error!("{message}");
                    return Err(StoreError::Layout(message));
                }
                deployment
                    .parse()
                    .map_err(|_| StoreError::Corrupt("deployment id".into()))
            }))
            .await
            .copied()
    }

    /// The partition a session id names, after the layout check; `None`
    /// for an id that names none.
    pub(super) async fn sid_partition(&self, sid: &str) -> Result<Option<u32>, StoreError> {
        self.layout().await?;
        let p = self.parts.of_sid(sid);
        if let Some(p) = p {
            crate::trace::record_partition(p);
        }
        Ok(p)
    }

    /// The key prefix of a subject's partition, after the layout check.
    pub(super) async fn subject_prefix(&self, subject_key: &str) -> Result<&str, StoreError> {
        self.layout().await?;
        let p = self.parts.of_subject(subject_key);
        crate::trace::record_partition(p);
        Ok(self.parts.prefix(p))
    }

    /// The key prefix for a name of its own (budgets, replay markers).
    pub(super) async fn name_prefix(&self, name: &str) -> Result<&str, StoreError> {
        self.layout().await?;
        Ok(self.parts.prefix(self.parts.of_name(name)))
    }
}
