//! [`TokenSource`] (a session's pair, refreshed ahead of expiry and on
//! `TOKEN_EXPIRED`; or an exchanged token for a downstream audience,
//! exchanged again ahead of expiry) and [`BearerInterceptor`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tessera_core::dpop::DpopKey;
use tessera_core::tokens;
use tessera_core::wire::{self, reason as code};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::{pb, reason, ClientError, TesseraClient};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct Held {
    access_token: String,
    refresh_token: String,
    /// When the access token expires, on the local monotonic clock: receipt
    /// time plus the server's `expires_in`, so wall-clock skew is irrelevant.
    expires: Instant,
}

/// The DPoP key of a DPoP-bound session, and the URL its refresh proofs
/// name as `htu` (the method is `POST`).
struct Dpop {
    key: Arc<DpopKey>,
    refresh_url: String,
}

/// What an exchanging source exchanges: the request (audience, scopes,
/// lifetime, actor token), its subject token taken from `subject` each time.
struct Exchange {
    subject: Arc<TokenSource>,
    request: pb::ExchangeRequest,
}

/// A session's token pair, refreshed ahead of expiry; or, made by
/// [`TokenSource::exchanging`], an exchanged token kept fresh by exchanging
/// again.
pub struct TokenSource {
    client: TesseraClient,
    fingerprint: String,
    dpop: Option<Dpop>,
    exchange: Option<Exchange>,
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
            dpop: None,
            exchange: None,
            held: RwLock::new(held_from(&pair)),
            refreshing: tokio::sync::Mutex::new(()),
            margin,
            refreshes: AtomicU64::new(0),
        })
    }

    /// A source for a DPoP-bound session (RFC 9449; issued with
    /// `dpop_jkt = key.jkt()`): every refresh carries a fresh proof by
    /// `key` for `POST refresh_url`, and [`TokenSource::dpop_proof`] makes
    /// the proofs of the calls that present the access token.
    pub fn with_dpop(
        client: TesseraClient,
        pair: pb::TokenPair,
        key: Arc<DpopKey>,
        refresh_url: &str,
    ) -> Arc<Self> {
        let margin = Duration::from_secs((pair.expires_in.max(0) as u64 / 5).min(60));
        Arc::new(TokenSource {
            client,
            fingerprint: String::new(),
            dpop: Some(Dpop {
                key,
                refresh_url: refresh_url.to_owned(),
            }),
            exchange: None,
            held: RwLock::new(held_from(&pair)),
            refreshing: tokio::sync::Mutex::new(()),
            margin,
            refreshes: AtomicU64::new(0),
        })
    }

    /// A source of exchanged tokens (RFC 8693) for one downstream audience:
    /// `request` names the audience, scopes and lifetime (and an actor
    /// token, if any); its `subject_token` is ignored and taken from
    /// `subject` (a session's source, itself kept fresh) at every
    /// exchange. The first exchange happens here; later ones a fifth of the
    /// exchanged token's lifetime (at most 60 s) before it expires, or on
    /// `TOKEN_EXPIRED` in [`TokenSource::call`]. When the subject's session
    /// is revoked, the exchanged token dies with it and the next exchange
    /// ends in [`ClientError::SessionEnded`].
    pub async fn exchanging(
        client: TesseraClient,
        subject: Arc<TokenSource>,
        request: pb::ExchangeRequest,
    ) -> Result<Arc<Self>, ClientError> {
        let source = TokenSource {
            client,
            fingerprint: String::new(),
            dpop: None,
            exchange: Some(Exchange { subject, request }),
            held: RwLock::new(Held {
                access_token: String::new(),
                refresh_token: String::new(),
                expires: Instant::now(),
            }),
            refreshing: tokio::sync::Mutex::new(()),
            margin: Duration::ZERO,
            refreshes: AtomicU64::new(0),
        };
        let lifetime = source.exchange_locked().await?;
        Ok(Arc::new(TokenSource {
            margin: Duration::from_secs((lifetime / 5).min(60)),
            ..source
        }))
    }

    /// Exchange again (the lock is held); the new token's lifetime, seconds.
    /// Boxed with its type spelled out: the subject is a source too (an
    /// exchanged one for a chain), and a recursive `async fn` can be
    /// neither sized nor proven `Send`.
    fn exchange_locked(&self) -> BoxFuture<'_, Result<u64, ClientError>> {
        Box::pin(async move {
            let Some(exchange) = &self.exchange else {
                return Err(ClientError::Invalid("not an exchanging source".into()));
            };
            let mut request = exchange.request.clone();
            request.subject_token = exchange.subject.access_token().await?;
            let response = self.client.exchange(request).await?;
            let lifetime = response.expires_in.max(0) as u64;
            *self.held.write().unwrap_or_else(|p| p.into_inner()) = Held {
                access_token: response.access_token,
                refresh_token: String::new(),
                expires: Instant::now() + Duration::from_secs(lifetime),
            };
            Ok(lifetime)
        })
    }

    /// A DPoP proof for a request `method url` that presents the current
    /// access token (`ath` is its hash); `None` without a DPoP key. Send it
    /// as the request's `DPoP` header, or as `VerifyRequest.dpop_proof`.
    pub fn dpop_proof(&self, method: &str, url: &str) -> Option<Result<String, ClientError>> {
        let dpop = self.dpop.as_ref()?;
        let token = self.current();
        Some(
            dpop.key
                .proof(
                    method,
                    url,
                    Some(&token),
                    tessera_core::unix_now_ms() / 1000,
                )
                .map_err(|e| ClientError::Invalid(e.to_string())),
        )
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
        if self.exchange.is_some() {
            self.exchange_locked().await?;
            self.refreshes.fetch_add(1, Ordering::Relaxed);
            return Ok(self.current());
        }
        let refresh_token = self
            .held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .refresh_token
            .clone();
        let pair = match &self.dpop {
            None => {
                self.client
                    .refresh(&refresh_token, &self.fingerprint)
                    .await?
            }
            Some(dpop) => {
                let proof = dpop
                    .key
                    .proof(
                        "POST",
                        &dpop.refresh_url,
                        None,
                        tessera_core::unix_now_ms() / 1000,
                    )
                    .map_err(|e| ClientError::Invalid(e.to_string()))?;
                self.client
                    .refresh_request(pb::RefreshRequest {
                        refresh_token,
                        dpop_proof: proof,
                        http_method: "POST".into(),
                        http_url: dpop.refresh_url.clone(),
                        ..Default::default()
                    })
                    .await?
            }
        };
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
