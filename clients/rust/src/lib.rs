//! `tessera-client`: call Tessera from Rust.
//!
//! - [`TesseraClient`]: typed calls over the generated stubs, with the API key.
//! - [`TokenSource`]: holds a session's pair, refreshes it ahead of expiry
//!   (scheduled from `expires_in`, so a skewed local clock does not matter),
//!   single-flight across concurrent callers; [`TokenSource::call`] is the
//!   silent refresh: on `TOKEN_EXPIRED` it refreshes once and retries once,
//!   and it picks up `x-new-token`.
//! - [`BearerInterceptor`]: a tonic interceptor attaching `authorization: Bearer …`.
//! - [`LocalVerifier`]: verifies access tokens in process with the server's
//!   own checks and reason codes, from the JWK set and the revocation feed;
//!   fails closed while its cache is out of sync.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tessera_core::checks::{check_audience_and_binding, check_scopes};
pub use tessera_core::error::TokenError;
use tessera_core::keys::PublicKeys;
use tessera_core::revocation::{
    subject_key, CacheAnswer, RevocationCache, RevocationEvent, RevocationKind,
};
pub use tessera_core::tokens::AccessClaims;
use tessera_core::tokens::{self, VerifyPolicy};
use tessera_core::unix_now_ms;
use tessera_core::wire::{self, reason as code};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use pb::token_authority_client::TokenAuthorityClient;
/// Client stubs of `tessera.v1`, generated from the repository's proto and
/// checked in (`tests/stubs.rs` regenerates and compares them).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    include!("pb/tessera.v1.rs");
}

/// What a client call can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The session is over (revoked, expired, or its refresh token was
    /// reused): sign the user in again; do not retry.
    #[error("session ended ({reason}); sign in again")]
    SessionEnded {
        /// The reason code the server gave.
        reason: String,
    },
    /// Any other failure of a call; see [`reason`] for its code.
    #[error("call failed: {0}")]
    Rpc(Status),
    /// No connection to the server.
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The call could not be made as asked (a bad address, a non-ASCII API
    /// key, a response without tokens).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        match reason(&s) {
            Some(r)
                if [
                    code::REFRESH_TOKEN_REUSED,
                    code::REFRESH_TOKEN_INVALID,
                    code::TOKEN_REVOKED,
                ]
                .contains(&r.as_str()) =>
            {
                ClientError::SessionEnded { reason: r }
            }
            _ => ClientError::Rpc(s),
        }
    }
}

/// The `ErrorInfo.reason` of a status from Tessera.
pub fn reason(status: &Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|i| i.reason)
}

/// Why [`LocalVerifier::verify`] refused a token, with the reason code the
/// server's `Verify` gives in the same case.
///
/// ```
/// use tessera_client::{TokenError, VerifyError};
/// assert_eq!(VerifyError::NotInSync.reason(), "STORE_UNAVAILABLE");
/// assert_eq!(VerifyError::from(TokenError::TokenRevoked).reason(), "TOKEN_REVOKED");
/// assert_eq!(VerifyError::Invalid("access_token").reason(), "FIELD_INVALID");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not good.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The revocation cache is not in sync with the feed: fail closed (ask
    /// the server instead). The server's reason in that case would be
    /// `STORE_UNAVAILABLE`.
    #[error("local verifier is not in sync with the revocation feed")]
    NotInSync,
    /// The request itself is bad (e.g. an empty or oversized token).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}

impl VerifyError {
    /// The `ErrorInfo.reason` the server would give.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Token(e) => e.reason(),
            VerifyError::NotInSync => code::STORE_UNAVAILABLE,
            VerifyError::Invalid(_) => code::FIELD_INVALID,
        }
    }
}

// === impl TesseraClient ===

/// Typed calls to Tessera.
#[derive(Clone)]
pub struct TesseraClient {
    inner: TokenAuthorityClient<Channel>,
    api_key: Option<AsciiMetadataValue>,
}

impl TesseraClient {
    /// Connect to `addr` (`http://host:port`, or `https://` with TLS),
    /// sending `api_key` as `x-tessera-key` on every call when given.
    pub async fn connect(addr: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        let channel = Channel::from_shared(addr.to_owned())
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .connect()
            .await?;
        Self::new(channel, api_key)
    }

    /// A client on an existing channel (no connection is made here).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect_lazy();
    /// let client = tessera_client::TesseraClient::new(channel, Some("my-api-key"));
    /// assert!(client.is_ok());
    /// let bad = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect_lazy();
    /// let refused = tessera_client::TesseraClient::new(bad, Some("two\nlines"));
    /// assert!(refused.is_err(), "an API key must be a valid header value");
    /// # }
    /// ```
    pub fn new(channel: Channel, api_key: Option<&str>) -> Result<Self, ClientError> {
        let api_key = api_key
            .map(|k| {
                k.parse()
                    .map_err(|_| ClientError::Invalid("API key is not a valid header value".into()))
            })
            .transpose()?;
        Ok(TesseraClient {
            inner: TokenAuthorityClient::new(channel),
            api_key,
        })
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(k) = &self.api_key {
            r.metadata_mut().insert(wire::API_KEY_HEADER, k.clone());
        }
        r
    }

    /// `Issue`: open a session (the caller must be allowed `Issue`).
    pub async fn issue(&self, r: pb::IssueRequest) -> Result<pb::TokenPair, ClientError> {
        pair(
            self.inner
                .clone()
                .issue(self.req(r))
                .await?
                .into_inner()
                .tokens,
        )
    }

    /// `Refresh`: rotate `refresh_token`; the presented token dies.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        fingerprint: &str,
    ) -> Result<pb::TokenPair, ClientError> {
        let r = pb::RefreshRequest {
            refresh_token: refresh_token.into(),
            device_fingerprint: fingerprint.into(),
        };
        pair(
            self.inner
                .clone()
                .refresh(self.req(r))
                .await?
                .into_inner()
                .tokens,
        )
    }

    /// `Verify`, returning the raw response so callers see `x-new-token`.
    pub async fn verify(
        &self,
        r: pb::VerifyRequest,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        self.inner.clone().verify(self.req(r)).await
    }

    /// `Revoke`; returns the event's cursor (empty when nothing was revoked).
    pub async fn revoke(&self, r: pb::RevokeRequest) -> Result<String, ClientError> {
        Ok(self
            .inner
            .clone()
            .revoke(self.req(r))
            .await?
            .into_inner()
            .cursor)
    }

    /// `GetJwks`: the public keys as RFC 7517 JSON.
    pub async fn jwks(&self) -> Result<String, ClientError> {
        Ok(self
            .inner
            .clone()
            .get_jwks(self.req(pb::GetJwksRequest {}))
            .await?
            .into_inner()
            .jwks_json)
    }

    /// `WatchRevocations`: the stream of revocation events.
    pub async fn watch(
        &self,
        r: pb::WatchRevocationsRequest,
    ) -> Result<tonic::Streaming<pb::RevocationEvent>, Status> {
        Ok(self
            .inner
            .clone()
            .watch_revocations(self.req(r))
            .await?
            .into_inner())
    }
}

fn pair(tokens: Option<pb::TokenPair>) -> Result<pb::TokenPair, ClientError> {
    tokens.ok_or_else(|| ClientError::Invalid("the response carried no tokens".into()))
}

// === impl TokenSource ===

struct Held {
    access_token: String,
    refresh_token: String,
    /// When the access token expires, on the local monotonic clock: receipt
    /// time plus the server's `expires_in`, so wall-clock skew is irrelevant.
    expires: Instant,
}

/// A session's token pair, refreshed ahead of expiry.
pub struct TokenSource {
    client: TesseraClient,
    fingerprint: String,
    held: RwLock<Held>,
    /// Single flight: one refresh at a time; the others wait and reuse it.
    refreshing: tokio::sync::Mutex<()>,
    /// Refresh this long before expiry.
    margin: Duration,
    refreshes: AtomicU64,
}

impl TokenSource {
    /// Refresh `margin` before the access token expires (a fifth of its
    /// lifetime, at most 60 s, by default).
    pub fn new(client: TesseraClient, pair: pb::TokenPair, fingerprint: &str) -> Arc<Self> {
        let margin = Duration::from_secs((pair.expires_in.max(0) as u64 / 5).min(60));
        Self::with_margin(client, pair, fingerprint, margin)
    }

    /// Refresh `margin` before the access token expires.
    pub fn with_margin(
        client: TesseraClient,
        pair: pb::TokenPair,
        fingerprint: &str,
        margin: Duration,
    ) -> Arc<Self> {
        Arc::new(TokenSource {
            client,
            fingerprint: fingerprint.to_owned(),
            held: RwLock::new(held_from(&pair)),
            refreshing: tokio::sync::Mutex::new(()),
            margin,
            refreshes: AtomicU64::new(0),
        })
    }

    /// How many refreshes this source made.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The current access token, without refreshing (for interceptors).
    pub fn current(&self) -> String {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .access_token
            .clone()
    }

    fn fresh(&self) -> Option<String> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        (Instant::now() + self.margin < held.expires).then(|| held.access_token.clone())
    }

    /// A valid access token, refreshing first when it is about to expire.
    pub async fn access_token(&self) -> Result<String, ClientError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _flight = self.refreshing.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t); // another caller refreshed while we waited
        }
        self.refresh_locked().await
    }

    /// Refresh because the server said `stale` expired; if someone already
    /// replaced `stale`, use theirs.
    pub async fn refresh_after(&self, stale: &str) -> Result<String, ClientError> {
        let _flight = self.refreshing.lock().await;
        let current = self.current();
        if current != stale {
            return Ok(current);
        }
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<String, ClientError> {
        let refresh_token = self
            .held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .refresh_token
            .clone();
        let pair = self
            .client
            .refresh(&refresh_token, &self.fingerprint)
            .await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let token = pair.access_token.clone();
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = held_from(&pair);
        Ok(token)
    }

    /// Adopt a token renewed by `Verify` (`x-new-token`), valid for `expires_in` seconds.
    pub fn adopt(&self, token: &str, expires_in: i64) {
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        held.access_token = token.to_owned();
        held.expires = Instant::now() + Duration::from_secs(expires_in.max(0) as u64);
    }

    /// Pick up `x-new-token` from response metadata, if present.
    pub fn observe(&self, metadata: &MetadataMap, expires_in: i64) {
        if let Some(t) = metadata
            .get(wire::NEW_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.adopt(t, expires_in);
        }
    }

    /// Silent refresh: run `f` with a valid token; on `TOKEN_EXPIRED`
    /// refresh once and retry once. A response carrying `x-new-token`
    /// (sliding renewal) replaces the held token. Revocation and reuse end
    /// the session ([`ClientError::SessionEnded`]); they are never retried.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<Response<T>, ClientError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        let token = self.access_token().await?;
        let response = match f(token.clone()).await {
            Err(s) if reason(&s).as_deref() == Some(code::TOKEN_EXPIRED) => {
                let fresh = self.refresh_after(&token).await?;
                f(fresh).await?
            }
            other => other?,
        };
        if let Some(new) = response
            .metadata()
            .get(wire::NEW_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            // Only for scheduling: the lifetime the authority gave the new
            // token (exp − iat), counted from now on the local clock.
            if let Some(lifetime) = token_lifetime(new) {
                self.adopt(new, lifetime);
            }
        }
        Ok(response)
    }

    /// An interceptor that attaches the current token as `authorization: Bearer …`.
    pub fn interceptor(self: &Arc<Self>) -> BearerInterceptor {
        BearerInterceptor {
            source: self.clone(),
        }
    }
}

/// `exp − iat` of a JWT from the authority (payload read without checking
/// the signature: it only schedules the next refresh).
fn token_lifetime(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims = tokens::decode_payload_unverified(payload)?;
    Some(claims.0 - claims.1)
}

fn held_from(pair: &pb::TokenPair) -> Held {
    Held {
        access_token: pair.access_token.clone(),
        refresh_token: pair.refresh_token.clone(),
        expires: Instant::now() + Duration::from_secs(pair.expires_in.max(0) as u64),
    }
}

/// Attaches `authorization: Bearer <access token>` to every request.
#[derive(Clone)]
pub struct BearerInterceptor {
    source: Arc<TokenSource>,
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let value = format!("Bearer {}", self.source.current())
            .parse()
            .map_err(|_| Status::internal("token is not a valid header value"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

// === impl LocalVerifier ===

/// Options of a [`LocalVerifier`].
#[derive(Debug, Clone)]
pub struct VerifierOptions {
    /// The issuer the server mints (`--issuer`).
    pub issuer: String,
    /// Clock-skew tolerance, seconds (the server's `--leeway`).
    pub leeway: i64,
    /// An unknown `kid` refetches the JWK set at most this often.
    pub min_refetch: Duration,
    /// Resume the feed after this cursor (one saved from an earlier run)
    /// instead of starting from a snapshot. A cursor the server refuses
    /// (`CURSOR_INVALID`: from another deployment, or ahead of its log) is
    /// dropped and the verifier resynchronises from a snapshot.
    pub resume_cursor: String,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            issuer: "tessera".into(),
            leeway: 30,
            min_refetch: Duration::from_secs(30),
            resume_cursor: String::new(),
        }
    }
}

struct VerifierState {
    client: TesseraClient,
    options: VerifierOptions,
    keys: RwLock<Arc<PublicKeys>>,
    last_fetch: Mutex<Instant>,
    feed: RevocationCache,
    cursor: Mutex<String>,
    /// revoked_at of the last applied event, and when it arrived here.
    last_event: Mutex<Option<(i64, Instant)>>,
}

/// Verifies access tokens in process, exactly as the server's `Verify`
/// (default consistency) does, from the JWK set and the revocation feed.
pub struct LocalVerifier {
    state: Arc<VerifierState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalVerifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalVerifier {
    /// Fetch the JWK set and start following the revocation feed (with a
    /// snapshot of everything in force, then live, resuming from the last
    /// cursor after a disconnect).
    pub async fn start(
        client: TesseraClient,
        options: VerifierOptions,
    ) -> Result<Self, ClientError> {
        let keys = PublicKeys::from_jwks_json(&client.jwks().await?)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let cursor = Mutex::new(options.resume_cursor.clone());
        let state = Arc::new(VerifierState {
            client,
            options,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: Mutex::new(Instant::now()),
            feed: RevocationCache::default(),
            cursor,
            last_event: Mutex::new(None),
        });
        let task = tokio::spawn(follow(state.clone()));
        Ok(LocalVerifier { state, task })
    }

    /// Is the revocation cache complete (stream connected and caught up)?
    pub fn in_sync(&self) -> bool {
        self.state.feed.in_sync()
    }

    /// How far behind the last revocation arrived: its age when it got here.
    pub fn lag(&self) -> Option<Duration> {
        let last = *self
            .state
            .last_event
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        last.map(|(revoked_at_ms, _)| {
            Duration::from_millis((unix_now_ms() - revoked_at_ms).max(0) as u64)
        })
    }

    /// Wait until in sync (or the timeout passes).
    pub async fn wait_in_sync(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.in_sync() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Verify `token` with the server's checks and reason codes:
    /// signature and algorithm by `kid`, validity window, issuer, audience,
    /// device binding, revocation, scopes. Out of sync: fails closed with
    /// `STORE_UNAVAILABLE` (ask the server instead).
    pub async fn verify(
        &self,
        token: &str,
        audience: &str,
        fingerprint: &str,
        required_scopes: &[String],
    ) -> Result<AccessClaims, VerifyError> {
        if token.is_empty() || token.len() > tokens::MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid("access_token must be 1 to 8192 bytes"));
        }
        let policy = VerifyPolicy {
            issuer: self.state.options.issuer.clone(),
            leeway: self.state.options.leeway,
        };
        let now_ms = unix_now_ms();
        let keys = self
            .state
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let claims = match tokens::verify(keys.as_ref(), token, now_ms / 1000, &policy) {
            Err(TokenError::TokenSignatureInvalid) if self.refetch_for(token).await => {
                let keys = self
                    .state
                    .keys
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                tokens::verify(keys.as_ref(), token, now_ms / 1000, &policy)?
            }
            other => other?,
        };
        check_audience_and_binding(&claims, audience, fingerprint)?;
        let skey = subject_key(&claims.tid, &claims.sub);
        match self
            .state
            .feed
            .check(&claims.jti, &claims.sid, &skey, claims.iat, now_ms)
        {
            CacheAnswer::Revoked => return Err(TokenError::TokenRevoked.into()),
            CacheAnswer::NotRevoked => {}
            CacheAnswer::Unknown => return Err(VerifyError::NotInSync),
        }
        check_scopes(&claims, required_scopes)?;
        Ok(claims)
    }

    /// On an unknown `kid`, refetch the JWK set (at most every `min_refetch`).
    async fn refetch_for(&self, token: &str) -> bool {
        let Some(header) = tokens::header_kid(token) else {
            return false;
        };
        if self
            .state
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&header)
        {
            return false;
        }
        {
            let mut last = self
                .state
                .last_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < self.state.options.min_refetch {
                return false;
            }
            *last = Instant::now();
        }
        match self
            .state
            .client
            .jwks()
            .await
            .ok()
            .and_then(|j| PublicKeys::from_jwks_json(&j).ok())
        {
            Some(keys) => {
                *self.state.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                true
            }
            None => false,
        }
    }
}

fn to_event(e: &pb::RevocationEvent) -> Option<RevocationEvent> {
    let ms = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
    };
    let kind = match pb::RevocationKind::try_from(e.kind).ok()? {
        pb::RevocationKind::Token => RevocationKind::Token,
        pb::RevocationKind::Session => RevocationKind::Session,
        pb::RevocationKind::Subject => RevocationKind::Subject,
        pb::RevocationKind::Unspecified => return None,
    };
    Some(RevocationEvent {
        cursor: e.cursor.clone(),
        kind,
        token_id: e.token_id.clone(),
        session_id: e.session_id.clone(),
        tenant: e.tenant.clone(),
        subject: e.subject.clone(),
        revoked_at_ms: ms(&e.revoked_at),
        issued_before_ms: ms(&e.issued_before),
        expires_at_ms: ms(&e.expires_at),
    })
}

/// Follow the feed forever: snapshot first, then live; on a break, mark the
/// cache out of sync and resume from the last cursor.
async fn follow(state: Arc<VerifierState>) {
    let mut expire = tokio::time::interval(Duration::from_secs(1));
    loop {
        let cursor = state
            .cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let request = pb::WatchRevocationsRequest {
            include_snapshot: cursor.is_empty(),
            after_cursor: cursor,
            mark_caught_up: true,
        };
        match state.client.watch(request).await {
            Ok(mut stream) => {
                loop {
                    tokio::select! {
                        msg = stream.message() => match msg {
                            Ok(Some(ev)) => match to_event(&ev) {
                                None => state.feed.set_in_sync(true), // caught up
                                Some(event) => {
                                    state.feed.apply(std::slice::from_ref(&event));
                                    *state.last_event.lock().unwrap_or_else(|p| p.into_inner()) = Some((event.revoked_at_ms, Instant::now()));
                                    *state.cursor.lock().unwrap_or_else(|p| p.into_inner()) = event.cursor;
                                }
                            },
                            Ok(None) | Err(_) => break,
                        },
                        _ = expire.tick() => state.feed.expire(unix_now_ms()),
                    }
                }
            }
            Err(e) if reason(&e).as_deref() == Some(code::CURSOR_INVALID) => {
                // Never trust a cursor the server does not know: start over
                // from a snapshot of everything in force.
                tracing::warn!(
                    "revocation feed refused our cursor; resynchronising from a snapshot"
                );
                state
                    .cursor
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "revocation feed unavailable"),
        }
        // Out of sync until the resumed stream has caught up again.
        state.feed.set_in_sync(false);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
