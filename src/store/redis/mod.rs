//! The Redis store, through fred. Standalone, Sentinel and Cluster all come
//! from the URL (`redis://`, `redis-sentinel://`, `redis-cluster://`).
//!
//! Every key carries the hash tag `{t}`, so in a Cluster all of Tessera's
//! keys live in one slot and every script stays atomic across them.
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

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::mpsc;

mod log;
mod scripts;

use scripts::*;

use super::batch::{script_error, Batcher};
use super::schema;
pub use super::schema::{CHANNEL, KEY_PREFIX};
use super::{
    FeedSignal, NewSession, RateLimit, RenewOutcome, RenewRequest, RevocationEvent, RevocationKind,
    RevocationState, RevokeRequest, RevokeTarget, RotateOutcome, RotateRequest, Rotation,
    SessionData, Store, REUSE_HISTORY,
};
use crate::error::StoreError;

fn key(suffix: &str) -> String {
    format!("{KEY_PREFIX}{suffix}")
}

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
    rate: Script,
    log_head: Script,
}

impl RedisStore {
    /// Connect (waiting at most `timeout` for the first connection; after that
    /// the client keeps reconnecting in the background).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config = Config::from_url(url).map_err(|e| {
            // fred's message may quote the URL: only the redacted one goes out.
            let redacted = crate::config::redact_url(url);
            let why = e.details().replace(url, &redacted);
            StoreError::Unavailable(format!("invalid Redis URL {redacted}: {why}"))
        })?;
        let client = Self::builder(&config, timeout)
            .build()
            .map_err(unavailable)?;
        client.connect();
        if tokio::time::timeout(
            timeout.max(Duration::from_secs(2)),
            client.wait_for_connect(),
        )
        .await
        .is_err()
        {
            tracing::warn!("Redis not reachable yet; serving NOT_SERVING until it is");
        }
        Ok(RedisStore {
            create: Batcher::spawn(client.clone(), Script::from_lua(CREATE_LUA)),
            rotate: Batcher::spawn(client.clone(), Script::from_lua(ROTATE_LUA)),
            client,
            builder_config: config,
            timeout,
            revoke: Script::from_lua(REVOKE_LUA),
            renew: Script::from_lua(RENEW_LUA),
            rate: Script::from_lua(RATE_LUA),
            log_head: Script::from_lua(LOG_HEAD_LUA),
        })
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
        args: Vec<String>,
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
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, StoreError> {
        R::from_value(batcher.call(keys, args).await?).map_err(script_error)
    }

    /// The underlying client, for tests that need raw access.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn parse_data(json: &str) -> Result<SessionData, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("session data: {e}")))
}

fn num(s: &str) -> Result<i64, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("expected a number, got {s:?}")))
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn create_session(&self, s: &NewSession) -> Result<Option<i64>, StoreError> {
        let data = serde_json::to_string(&s.data)
            .map_err(|e| StoreError::Corrupt(format!("session data: {e}")))?;
        let (rate_key, interval, burst) = match &s.rate_limit {
            Some(l) => (
                key(&schema::rate(&schema::issue_budget(&s.subject_key))),
                l.interval_ms,
                l.burst_ms,
            ),
            None => (String::new(), 0, 0),
        };
        let (caller_key, caller_interval, caller_burst) = match &s.caller_rate {
            Some((name, l)) => (key(&schema::rate(name)), l.interval_ms, l.burst_ms),
            None => (String::new(), 0, 0),
        };
        let reply: Vec<String> = self
            .batched(
                &self.create,
                vec![
                    key(&schema::session(&s.data.sid)),
                    key(&schema::subject_index(&s.subject_key)),
                ],
                vec![
                    data,
                    s.refresh_hash.clone(),
                    s.data.created_ms.to_string(),
                    s.refresh_exp_ms.to_string(),
                    s.data.absolute_exp_ms.to_string(),
                    s.data.idle_ms.to_string(),
                    s.subject_key.clone(),
                    s.data.tenant.clone(),
                    s.data.subject.clone(),
                    s.data.fingerprint_hash.clone().unwrap_or_default(),
                    rate_key,
                    interval.to_string(),
                    burst.to_string(),
                    s.keep_until_ms.to_string(),
                    s.data.sid.clone(),
                    caller_key,
                    caller_interval.to_string(),
                    caller_burst.to_string(),
                ],
            )
            .await?;
        match reply.as_slice() {
            [tag] if tag == "ok" => Ok(None),
            [tag, wait] if tag == "limited" => Ok(Some(num(wait)?)),
            _ => Err(StoreError::Corrupt("unexpected create reply".into())),
        }
    }

    async fn rotate(&self, r: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        let reply: Vec<String> = self
            .batched(
                &self.rotate,
                vec![
                    key(&schema::session(&r.sid)),
                    key(&schema::session_marker(&r.sid)),
                    key(schema::LOG),
                ],
                vec![
                    r.presented_hash.clone(),
                    r.new_hash.clone(),
                    r.sealed_successor.clone(),
                    r.now_ms.to_string(),
                    r.grace_ms.to_string(),
                    CHANNEL.to_owned(),
                    r.feed.retention_ms.to_string(),
                    r.feed.access_horizon_ms.to_string(),
                    REUSE_HISTORY.to_string(),
                    KEY_PREFIX.to_owned(),
                    r.sid.clone(),
                    r.fingerprint_hash.clone().unwrap_or_default(),
                    r.rate_limit.map_or(0, |l| l.interval_ms).to_string(),
                    r.rate_limit.map_or(0, |l| l.burst_ms).to_string(),
                    r.keep_until_ms.to_string(),
                ],
            )
            .await?;
        let rotation =
            |data: &str, gen: &str, rot: &str, exp: &str| -> Result<Rotation, StoreError> {
                Ok(Rotation {
                    data: parse_data(data)?,
                    generation: num(gen)? as u64,
                    rotated_at_ms: num(rot)?,
                    refresh_exp_ms: num(exp)?,
                })
            };
        match reply.as_slice() {
            [tag] if tag == "invalid" => Ok(RotateOutcome::Invalid),
            [tag] if tag == "fingerprint" => Ok(RotateOutcome::FingerprintMismatch),
            [tag, wait] if tag == "limited" => Ok(RotateOutcome::RateLimited {
                retry_after_ms: num(wait)?,
            }),
            [tag, id] if tag == "reused" => Ok(RotateOutcome::Reused { cursor: id.clone() }),
            [tag, data, gen, rot, exp] if tag == "rotated" => {
                Ok(RotateOutcome::Rotated(rotation(data, gen, rot, exp)?))
            }
            [tag, data, gen, rot, exp, sealed] if tag == "grace" => Ok(RotateOutcome::Grace {
                rotation: rotation(data, gen, rot, exp)?,
                sealed: sealed.clone(),
            }),
            other => Err(StoreError::Corrupt(format!(
                "unexpected rotate reply with {} fields",
                other.len()
            ))),
        }
    }

    async fn renew(&self, r: &RenewRequest) -> Result<RenewOutcome, StoreError> {
        let reply: Vec<String> = self
            .script(
                &self.renew,
                vec![
                    key(&schema::session(&r.sid)),
                    key(&schema::session_marker(&r.sid)),
                    key(&schema::renewal(&r.jti)),
                ],
                vec![
                    r.now_ms.to_string(),
                    if r.mint { "1" } else { "0" }.to_owned(),
                    r.marker_ttl_ms.max(1).to_string(),
                    KEY_PREFIX.to_owned(),
                    r.keep_until_ms.to_string(),
                    r.sid.clone(),
                ],
            )
            .await?;
        match reply.as_slice() {
            [tag] if tag == "invalid" => Ok(RenewOutcome::Invalid),
            [tag, _] if tag == "extended" => Ok(RenewOutcome::Extended),
            [tag, iat, abs] if tag == "renewed" => Ok(RenewOutcome::Renewed {
                iat_ms: num(iat)?,
                absolute_exp_ms: num(abs)?,
            }),
            other => Err(StoreError::Corrupt(format!(
                "unexpected renew reply with {} fields",
                other.len()
            ))),
        }
    }

    async fn rate_limit(
        &self,
        key_name: &str,
        limit: RateLimit,
        _now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let retry: i64 = self
            .script(
                &self.rate,
                vec![key(&schema::rate(key_name))],
                vec![limit.interval_ms.to_string(), limit.burst_ms.to_string()],
            )
            .await?;
        Ok((retry > 0).then_some(retry))
    }

    async fn revoke(&self, r: &RevokeRequest) -> Result<Option<String>, StoreError> {
        let now = r.now_ms;
        let horizon = r.feed.access_horizon_ms;
        // (kind, marker key, session key, marker ttl, jti, sid, tenant, subject, event expiry, refresh hash)
        let (kind, marker, session, ttl, jti, sid, tenant, subject, expires, hash) = match &r.target
        {
            RevokeTarget::Token {
                jti,
                sid,
                tenant,
                subject,
                exp_ms,
            } => {
                if *exp_ms <= now {
                    return Ok(None);
                }
                let marker = key(&schema::token_marker(jti));
                (
                    RevocationKind::Token,
                    marker.clone(),
                    marker,
                    exp_ms - now,
                    jti.clone(),
                    sid.clone(),
                    tenant.clone(),
                    subject.clone(),
                    *exp_ms,
                    String::new(),
                )
            }
            RevokeTarget::Session { sid, refresh_hash } => (
                RevocationKind::Session,
                key(&schema::session_marker(sid)),
                key(&schema::session(sid)),
                horizon,
                String::new(),
                sid.clone(),
                String::new(),
                String::new(),
                now + horizon,
                refresh_hash.clone().unwrap_or_default(),
            ),
            RevokeTarget::Subject { tenant, subject } => {
                let skey = super::subject_key(tenant, subject);
                (
                    RevocationKind::Subject,
                    key(&schema::subject_cutoff(&skey)),
                    key(&schema::subject_index(&skey)),
                    r.feed.subject_horizon_ms,
                    String::new(),
                    String::new(),
                    tenant.clone(),
                    subject.clone(),
                    now + horizon,
                    String::new(),
                )
            }
        };
        let reply: Option<String> = self
            .script(
                &self.revoke,
                vec![marker, key(schema::LOG), session],
                vec![
                    kind.code().to_owned(),
                    now.to_string(),
                    ttl.max(1).to_string(),
                    r.feed.retention_ms.to_string(),
                    CHANNEL.to_owned(),
                    jti,
                    sid,
                    tenant,
                    subject,
                    expires.to_string(),
                    hash,
                    REUSE_HISTORY.to_string(),
                ],
            )
            .await?;
        Ok(reply)
    }

    async fn revocation_state(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        _now_ms: i64,
    ) -> Result<RevocationState, StoreError> {
        let values: Vec<Option<String>> = self
            .client
            .mget(vec![
                key(&schema::token_marker(jti)),
                key(&schema::session_marker(sid)),
                key(&schema::subject_cutoff(subject_key)),
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
        after: &str,
        limit: usize,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        log::read(&self.client, after, limit).await
    }

    async fn log_head(&self) -> Result<String, StoreError> {
        self.script(&self.log_head, vec![key(schema::LOG)], vec![])
            .await
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<FeedSignal>, StoreError> {
        let subscriber = Self::builder(&self.builder_config, self.timeout)
            .build_subscriber_client()
            .map_err(unavailable)?;
        Ok(log::follow(subscriber))
    }

    async fn ping(&self) -> Result<Option<i64>, StoreError> {
        use fred::types::{ClusterHash, CustomCommand};
        let time = CustomCommand::new_static("TIME", ClusterHash::Random, false);
        let (secs, micros): (i64, i64) = self
            .client
            .custom(time, Vec::<String>::new())
            .await
            .map_err(unavailable)?;
        Ok(Some(secs * 1000 + micros / 1000))
    }
}
