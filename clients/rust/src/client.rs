//! [`TesseraClient`]: typed calls over the generated stubs, with the API key.

use tessera_core::wire;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::pb::token_authority_client::TokenAuthorityClient;
use crate::{pb, ClientError};

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
            ..Default::default()
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

    /// `Refresh` with every field of the request (DPoP proofs, client data).
    pub async fn refresh_request(
        &self,
        r: pb::RefreshRequest,
    ) -> Result<pb::TokenPair, ClientError> {
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

    /// `ListSessions`: one page of a subject's live sessions (the caller
    /// must be allowed `ListSessions`); pass the response's
    /// `next_page_token` back for the next page.
    pub async fn list_sessions(
        &self,
        r: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, ClientError> {
        Ok(self
            .inner
            .clone()
            .list_sessions(self.req(r))
            .await?
            .into_inner())
    }

    /// `Exchange` (RFC 8693): a narrower access token for `r.audience` that
    /// names the subject of `r.subject_token` and this caller (or the
    /// `actor_token`'s subject) as the actor. The caller must be allowed
    /// `Exchange` and the audience (`exchange_audiences`); anything wider
    /// than the subject token gives is `EXCHANGE_NOT_ALLOWED`.
    pub async fn exchange(
        &self,
        r: pb::ExchangeRequest,
    ) -> Result<pb::ExchangeResponse, ClientError> {
        Ok(self.inner.clone().exchange(self.req(r)).await?.into_inner())
    }

    /// `GetJwks`: the public keys as RFC 7517 JSON.
    pub async fn jwks(&self) -> Result<String, ClientError> {
        Ok(self.jwks_of("").await?.jwks_json)
    }

    /// `GetJwks` for `tenant`: its own keys (`--tenants`), else the default
    /// ones, with the issuer of the tokens they sign.
    pub async fn jwks_of(&self, tenant: &str) -> Result<pb::GetJwksResponse, ClientError> {
        let request = pb::GetJwksRequest {
            tenant: tenant.to_owned(),
        };
        Ok(self
            .inner
            .clone()
            .get_jwks(self.req(request))
            .await?
            .into_inner())
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
