//! Caller authentication on the OAuth port: HTTP Basic (RFC 6749 §2.3.1),
//! `x-tessera-key` or a client certificate, against the same callers file
//! as the gRPC port, with the same per-caller budgets.

use axum::http::{header, HeaderMap, StatusCode};
use tessera_core::wire::Rpc;

use super::{OAuth, OAuthError};
use crate::error::Error;
use crate::store::Store;
use crate::transport::callers::TenantScope;
use crate::transport::web::Peer;

/// HTTP Basic credentials (RFC 7617), each part form-decoded (RFC 6749
/// §2.3.1): `(name, key)`. `Err` for a header that is Basic but broken.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, Vec<u8>)>, ()> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (name, key) = text.split_once(':').ok_or(())?;
    let name = crate::authority::convert::percent_decode(name, true)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(())?;
    let key = crate::authority::convert::percent_decode(key, true).ok_or(())?;
    Ok(Some((name, key)))
}

impl<S: Store> OAuth<S> {
    /// The caller of a request to an endpoint that needs one, allowed to
    /// call `rpc`, with its `--caller-rate` budget spent, and its scope.
    pub(super) async fn caller(
        &self,
        headers: &HeaderMap,
        peer: &Peer,
        rpc: Rpc,
    ) -> Result<(String, TenantScope), OAuthError> {
        let unauthenticated = || {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "caller authentication failed",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"tessera\"".to_owned(),
            )
        };
        let basic = basic_credentials(headers).map_err(|()| unauthenticated())?;
        let header_key = headers
            .get(tessera_core::wire::API_KEY_HEADER)
            .map(|v| v.as_bytes());
        let key = basic.as_ref().map(|(_, k)| k.as_slice()).or(header_key);
        let ip = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let (name, scope) =
            match self
                .callers
                .authorize_scoped(rpc.as_str(), key, &peer.identities, &ip)
            {
                Ok(None) => ("anonymous".to_owned(), TenantScope::All),
                Ok(Some((found, scope))) => {
                    // Basic names the caller: the key must be that caller's.
                    if basic.as_ref().is_some_and(|(name, _)| *name != found) {
                        return Err(unauthenticated());
                    }
                    (found, scope)
                }
                Err(Error::CallerNotAllowed) => {
                    return Err(OAuthError::new(
                        StatusCode::FORBIDDEN,
                        "unauthorized_client",
                        format!("this caller may not call {rpc}"),
                    ))
                }
                Err(_) => return Err(unauthenticated()),
            };
        let rates = &self.authority.policy.caller_rates;
        if let Some(limit) = crate::transport::caller_limits::budget_for(rates, rpc) {
            let spent = crate::authority::caller::charge(
                self.authority.store.as_ref(),
                limit,
                (&name, &scope.label()),
                rpc,
            )
            .await;
            if let Err(e) = spent {
                return Err(OAuthError::from_error(rpc, &e));
            }
        }
        Ok((name, scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("gate%3Away:k%2By");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Ok(Some(("gate:way".to_owned(), b"k+y".to_vec())))
        );
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), Err(()));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h), Ok(None));
    }
}
