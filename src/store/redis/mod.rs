//! The Redis store, through fred. Standalone, Sentinel and Cluster all come
//! from the URL (`redis://`, `redis-sentinel://`, `redis-cluster://`).
//!
//! The keyspace is cut into `--redis-partitions` partitions, each under a
//! hash tag of its own ([`super::partition`]): every script touches one
//! partition, so it stays atomic on a Cluster, and the partitions spread over
//! the masters. The partition count and a deployment id are kept in Redis
//! ([`schema::META`]) by the first replica; a replica configured with
//! another count refuses to start.
//!
//! fred pitfalls handled here (docs/pitfalls.md): a reconnect policy and a command
//! timeout are set explicitly; in-flight commands may be re-sent after a
//! reconnect, which every script tolerates (see the scripts' comments); the
//! pub/sub channel only *wakes* the feed reader, which then reads the durable
//! log, so a lost or lagged message loses nothing.
//!
//! Issue's and Refresh's scripts are sent in batches (group commit, see
//! [`super::batch`]): fred flushes the socket after every EVALSHA, and under
//! load that per-call cost was the largest after the signature.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::mpsc;

mod connect;
mod durable;
mod layout;
mod log;
mod others;
mod replies;
mod scripts;
mod tls;

pub use connect::redact_url;
pub use tls::{url_uses_tls, RedisTls};

use layout::META_LUA;
use replies::num;
use scripts::*;

use super::batch::{script_error, Batcher};
use super::partition::Partitions;
use super::schema;
use super::{
    event_ref, CreateOutcome, FeedSignal, NewSession, Position, RateLimit, RenewOutcome,
    RenewRequest, RevocationEvent, RevocationState, RevokeRequest, RevokeTarget, RotateOutcome,
    RotateRequest, SessionPage, Store,
};
use crate::store::StoreError;

use schema::redis_key as key;

/// How long a replica whose Redis answers goes on trying a layout check that
/// does not complete before it starts anyway (and checks at the first store
/// command).
const STARTUP_LAYOUT_WAIT: Duration = Duration::from_secs(10);

fn unavailable(e: Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// [`Store`] on Redis.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    builder_config: Config,
    timeout: Duration,
    create: Batcher,
    rotate: Batcher,
    revoke: Script,
    renew: Script,
    rate: Batcher,
    log_head: Script,
    list: Script,
    owner: Script,
    meta_script: Script,
    /// `--redis-wait-replicas`: the count and the connection revocations go
    /// through (see [`RedisStore::wait_for_replicas`]).
    durable: Option<(u32, Client)>,
    parts: Arc<Partitions>,
    /// The deployment id, once the layout in Redis was found to be ours.
    deployment: Arc<tokio::sync::OnceCell<u64>>,
}

impl RedisStore {
    /// Connect (waiting at most `timeout` for the first connection; after that
    /// the client keeps reconnecting in the background) to a deployment of
    /// `partitions` partitions. When Redis answers, its layout is checked
    /// now: another partition count is [`StoreError::Layout`]. When it does
    /// not yet, the check comes before the first command that needs it, and
    /// a mismatch then fails every such command.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        partitions: u32,
    ) -> Result<Self, StoreError> {
        Self::connect_with(url, &RedisTls::default(), timeout, partitions).await
    }

    /// [`Self::connect`] with the TLS settings of a `rediss` URL
    /// (`--redis-tls-*`; see [`tls`]). TLS that cannot be honoured, and a
    /// Redis older than 7, are errors here.
    pub async fn connect_with(
        url: &str,
        tls: &RedisTls,
        timeout: Duration,
        partitions: u32,
    ) -> Result<Self, StoreError> {
        let parts = Partitions::new(partitions).map_err(StoreError::Layout)?;
        let config = connect::config(url, tls, timeout).await?;
        let client = Self::builder(&config, timeout)
            .build()
            .map_err(unavailable)?;
        client.connect();
        let connected = tokio::time::timeout(
            timeout.max(Duration::from_secs(2)),
            client.wait_for_connect(),
        )
        .await
        .is_ok();
        if !connected {
            tracing::warn!("Redis not reachable yet; serving NOT_SERVING until it is");
        }
        let store = RedisStore {
            create: Batcher::spawn(client.clone(), CREATE_LUA),
            rotate: Batcher::spawn(client.clone(), ROTATE_LUA),
            rate: Batcher::spawn(client.clone(), RATE_LUA),
            client,
            builder_config: config,
            timeout,
            revoke: Script::from_lua(REVOKE_LUA),
            renew: Script::from_lua(RENEW_LUA),
            log_head: Script::from_lua(LOG_HEAD_LUA),
            list: Script::from_lua(LIST_LUA),
            owner: Script::from_lua(OWNER_LUA),
            meta_script: Script::from_lua(META_LUA),
            durable: None,
            parts: Arc::new(parts),
            deployment: Arc::default(),
        };
        if connected {
            store.startup_layout_check().await?;
        }
        Ok(store)
    }

    /// The layout check at start-up, when Redis answered: a mismatch (or a
    /// Redis too old) is a start-up error. A check that cannot complete (a
    /// command timing out on a busy or write-paused Redis) is tried again for
    /// up to [`STARTUP_LAYOUT_WAIT`], so a mismatch is not missed by a replica
    /// that then serves NOT_SERVING and fails every store call instead of
    /// exiting; after that it warns, and the check runs before the first
    /// store command that needs it (see [`Self::connect`]).
    async fn startup_layout_check(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + STARTUP_LAYOUT_WAIT;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.layout().await {
                Ok(_) => return Ok(()),
                Err(e @ (StoreError::Layout(_) | StoreError::Tls(_))) => return Err(e),
                Err(e) if tokio::time::Instant::now() + pause >= deadline => {
                    tracing::warn!(error = %e, "cannot read the deployment's layout yet");
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "layout check did not complete; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The partitioning.
    pub fn partitions(&self) -> &Partitions {
        &self.parts
    }

    fn builder(config: &Config, timeout: Duration) -> Builder {
        let mut builder = Builder::from_config(config.clone());
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                // Scripts are safe to re-send (see the scripts), but a command
                // that cannot complete quickly should fail, not linger.
                c.max_command_attempts = 2;
            })
            // Never give up reconnecting; back off to 500 ms, so recovery after an
            // outage is quick (a reconnect attempt to a dead Redis is cheap).
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 500, 2));
        builder
    }

    async fn script<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<schema::Arg>,
    ) -> Result<R, StoreError> {
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(script_error)
    }

    /// One call of a batched script ([`Batcher`]), its reply as `R`.
    async fn batched<R: FromValue>(
        &self,
        batcher: &Batcher,
        call: schema::ScriptCall,
    ) -> Result<R, StoreError> {
        let reply = batcher.call(call.keys, call.args, call.shared).await?;
        R::from_value(reply).map_err(script_error)
    }

    /// The underlying client, for tests that need raw access.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn log_partitions(&self) -> u32 {
        self.parts.count()
    }

    async fn deployment(&self) -> Result<u64, StoreError> {
        self.layout().await
    }

    async fn create_session(&self, s: &NewSession) -> Result<CreateOutcome, StoreError> {
        let p = self
            .sid_partition(&s.data.sid)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a new session id names no partition".into()))?;
        // The caller's budget lives in the caller's partition and is counted
        // first (a call its subject's budget refuses still counts against
        // it): in the create script itself on one Redis, in a call of its own
        // before on a Cluster, whose scripts reach one slot only.
        let mut caller = None;
        if let Some((name, limit)) = &s.caller_rate {
            if self.client.is_clustered() {
                if let Some(retry_after_ms) = self.rate_limit(name, *limit, 0).await? {
                    return Ok(CreateOutcome::RateLimited { retry_after_ms });
                }
            } else {
                let key_prefix = self.name_prefix(name).await?;
                caller = Some((key(key_prefix, &schema::rate(name)), *limit));
            }
        }
        let prefix = self.parts.prefix(p);
        let call = schema::create_call(s, prefix, caller)?;
        let reply: Vec<String> = self.batched(&self.create, call).await?;
        replies::create_outcome(p, &reply)
    }

    async fn list_sessions(
        &self,
        subject_key: &str,
        after: &str,
        limit: usize,
        now_ms: i64,
    ) -> Result<SessionPage, StoreError> {
        let prefix = self.subject_prefix(subject_key).await?;
        let call = schema::list_call(subject_key, after, limit, now_ms, prefix);
        let reply: Vec<String> = self.script(&self.list, call.keys, call.args).await?;
        replies::session_page(&reply)
    }

    async fn rotate(&self, r: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        let Some(p) = self.sid_partition(&r.sid).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        let prefix = self.parts.prefix(p);
        let call = schema::rotate_call(r, prefix);
        let reply: Vec<String> = self.batched(&self.rotate, call).await?;
        if let Some(id) = replies::reused_id(&reply) {
            // The kill ran on the shared connection: the marker written
            // after it on the revocation connection covers it too.
            self.await_replicas(prefix, id).await?;
        }
        replies::rotate_outcome(p, &r.sid, &reply)
    }

    async fn renew(&self, r: &RenewRequest) -> Result<RenewOutcome, StoreError> {
        let Some(p) = self.sid_partition(&r.sid).await? else {
            return Ok(RenewOutcome::Invalid);
        };
        let call = schema::renew_call(r, self.parts.prefix(p));
        let reply: Vec<String> = self.script(&self.renew, call.keys, call.args).await?;
        replies::renew_outcome(&reply)
    }

    async fn rate_limit(
        &self,
        key_name: &str,
        limit: RateLimit,
        _now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let prefix = self.name_prefix(key_name).await?;
        let retry: i64 = self
            .batched(
                &self.rate,
                schema::ScriptCall {
                    keys: vec![key(prefix, &schema::rate(key_name))],
                    args: vec![limit.interval_ms.into(), limit.burst_ms.into()],
                    shared: Vec::new(),
                },
            )
            .await?;
        Ok((retry > 0).then_some(retry))
    }

    async fn revoke(&self, r: &RevokeRequest) -> Result<Option<String>, StoreError> {
        // Tokens and subjects by their subject; sessions by their id's prefix
        // (an id naming no partition names no session: nothing to revoke).
        self.layout().await?;
        let p = match &r.target {
            RevokeTarget::Token {
                tenant, subject, ..
            }
            | RevokeTarget::Subject { tenant, subject }
            | RevokeTarget::SubjectExcept {
                tenant, subject, ..
            } => self.parts.of_subject(&super::subject_key(tenant, subject)),
            RevokeTarget::Session { sid, .. } => match self.parts.of_sid(sid) {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        crate::trace::record_partition(p);
        let prefix = self.parts.prefix(p);
        let Some(call) = schema::revoke_call(r, prefix) else {
            return Ok(None); // a token already dead needs nothing
        };
        if let RevokeTarget::SubjectExcept { .. } = r.target {
            return self.revoke_others(p, prefix, call).await;
        }
        let reply: Option<String> = self
            .revoke
            .evalsha_with_reload(self.revoker(), call.keys, call.args)
            .await
            .map_err(script_error)?;
        if let Some(id) = &reply {
            self.await_replicas(prefix, id).await?;
        }
        Ok(reply.map(|id| event_ref(p, &id)))
    }

    async fn session_tenant(
        &self,
        sid: &str,
        refresh_hash: Option<&str>,
        _now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        // An id naming no partition names no session.
        let Some(p) = self.sid_partition(sid).await? else {
            return Ok(None);
        };
        let prefix = self.parts.prefix(p);
        let keys = vec![key(prefix, &schema::session(sid))];
        let args = vec![refresh_hash.unwrap_or_default().into()];
        self.script(&self.owner, keys, args).await
    }

    async fn revocation_state(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        _now_ms: i64,
    ) -> Result<RevocationState, StoreError> {
        let prefix = self.subject_prefix(subject_key).await?;
        let values: Vec<Option<String>> = self
            .client
            .mget(vec![
                key(prefix, &schema::token_marker(jti)),
                key(prefix, &schema::session_marker(sid)),
                key(prefix, &schema::subject_cutoff(subject_key)),
            ])
            .await
            .map_err(unavailable)?;
        let get = |i: usize| values.get(i).cloned().flatten();
        Ok(RevocationState {
            token: get(0).is_some(),
            session: get(1).is_some(),
            subject_cutoff_ms: get(2).map(|c| num(&c)).transpose()?,
        })
    }

    async fn read_log(
        &self,
        after: &Position,
        only: Option<u32>,
        limit: usize,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.layout().await?;
        log::read(&self.client, &self.parts, after, only, limit).await
    }

    async fn log_head(&self) -> Result<Position, StoreError> {
        self.layout().await?;
        let heads = futures::future::try_join_all((0..self.parts.count()).map(|p| {
            self.script::<String>(
                &self.log_head,
                vec![key(self.parts.prefix(p), schema::LOG)],
                vec![],
            )
        }))
        .await?;
        let mut head = Position::start(self.parts.count());
        for (p, id) in heads.iter().enumerate() {
            if let Some(id) = super::parse_cursor(id) {
                head.advance(p as u32, id);
            }
        }
        Ok(head)
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<FeedSignal>, StoreError> {
        self.layout().await?;
        let subscriber = Self::builder(&self.builder_config, self.timeout)
            .build_subscriber_client()
            .map_err(unavailable)?;
        Ok(log::follow(subscriber, &self.parts))
    }

    async fn shared_value(
        &self,
        name: &str,
        candidate: &str,
        expires_at_ms: i64,
        _now_ms: i64,
    ) -> Result<String, StoreError> {
        use fred::types::{Expiration, SetOptions};
        let prefix = self.name_prefix(name).await?;
        // SET NX GET (Redis 7): the old value, or nil when ours was set.
        let old: Option<String> = self
            .client
            .set(
                key(prefix, &schema::shared(name)),
                candidate,
                Some(Expiration::PXAT(expires_at_ms)),
                Some(SetOptions::NX),
                true,
            )
            .await
            .map_err(unavailable)?;
        Ok(old.unwrap_or_else(|| candidate.to_owned()))
    }

    async fn first_use(
        &self,
        key_name: &str,
        expires_at_ms: i64,
        _now_ms: i64,
    ) -> Result<bool, StoreError> {
        use fred::types::{Expiration, SetOptions};
        let prefix = self.name_prefix(key_name).await?;
        let set: Option<String> = self
            .client
            .set(
                key(prefix, &schema::dpop_proof(key_name)),
                "1",
                Some(Expiration::PXAT(expires_at_ms)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn ping(&self) -> Result<Option<i64>, StoreError> {
        use fred::types::{ClusterHash, CustomCommand};
        // A replica of another layout must never report itself healthy.
        self.layout().await?;
        let time = CustomCommand::new_static("TIME", ClusterHash::Random, false);
        let (secs, micros): (i64, i64) = self
            .client
            .custom(time, Vec::<String>::new())
            .await
            .map_err(unavailable)?;
        Ok(Some(secs * 1000 + micros / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        for (url, want) in [
            (
                "redis://default:s3cret@10.0.0.1:6379/0",
                "redis://***@10.0.0.1:6379/0",
            ),
            ("rediss://:s3cret@host", "rediss://***@host"),
            ("redis://host:6379", "redis://host:6379"),
            (
                "redis-sentinel://u:s3cret@a:1,b:2/0?sentinelServiceName=m&sentinelPassword=s3cret",
                "redis-sentinel://***@a:1,b:2/0?sentinelServiceName=m&sentinelPassword=***",
            ),
            ("u:s3cret@host", "***@host"),
        ] {
            assert_eq!(redact_url(url), want);
        }
    }
}
