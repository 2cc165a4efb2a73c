//! `--redis-wait-replicas`: revocations on a connection of their own, each
//! followed by a `WAIT` for the configured replicas.

use fred::prelude::*;

use super::{key, schema, unavailable, RedisStore, StoreError};

impl RedisStore {
    /// With `replicas > 0`, every revocation waits until that many replicas
    /// acknowledged it. Redis's `WAIT` covers the writes of the connection
    /// it is sent on, and blocks that connection while it waits; so
    /// revocations get a client (connections) of their own, where blocking
    /// stalls no Issue or Refresh. A refresh-token reuse revokes its session
    /// inside Refresh's script, on the shared connection: the marker that
    /// [`Self::await_replicas`] writes after it on the revocation connection
    /// covers it too.
    pub fn wait_for_replicas(mut self, replicas: u32) -> Result<Self, StoreError> {
        if replicas > 0 {
            let client = Self::builder(&self.builder_config, self.timeout)
                .build()
                .map_err(unavailable)?;
            client.connect();
            self.durable = Some((replicas, client));
        }
        Ok(self)
    }

    /// The client revocations are written through.
    pub(super) fn revoker(&self) -> &Client {
        self.durable.as_ref().map_or(&self.client, |(_, c)| c)
    }

    /// `WAIT` for the configured replicas on the revocation connection,
    /// after a small plain write there (`marker`, the event id, for 1 s).
    /// That write is what `WAIT` measures: Redis 7.0 does not count a
    /// script's writes for the `WAIT` of the connection that ran it (seen
    /// here: `EVAL` of a `SET`, then `WAIT 1` answers 0; a plain `SET`, 1),
    /// and replicas apply the stream in order, so once the marker is on a
    /// replica, so is every write before it. A shortfall is `Unavailable`:
    /// the revocation stands on the master.
    pub(super) async fn await_replicas(
        &self,
        prefix: &str,
        marker: &str,
    ) -> Result<(), StoreError> {
        use fred::types::{ClusterHash, CustomCommand, Expiration};
        let Some((want, client)) = &self.durable else {
            return Ok(());
        };
        let _: () = client
            .set(
                key(prefix, schema::DURABLE),
                marker,
                Some(Expiration::PX(1_000)),
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        // The master of the partition's slot, half the store timeout at most.
        let slot = fred::util::redis_keyslot(prefix.as_bytes());
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let timeout_ms = (self.timeout.as_millis() / 2).max(1) as i64;
        let acked: i64 = client
            .custom(wait, vec![i64::from(*want), timeout_ms])
            .await
            .map_err(unavailable)?;
        if acked < i64::from(*want) {
            return Err(StoreError::Unavailable(format!(
                "revocation acknowledged by {acked} of {want} replicas (--redis-wait-replicas)"
            )));
        }
        Ok(())
    }
}
