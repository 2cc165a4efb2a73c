//! The OAuth port's input: form bodies (`application/x-www-form-urlencoded`,
//! strictly parsed, bounded by [`MAX_FORM_BYTES`]) read only once the
//! caller is known.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use tessera_core::wire::Rpc;

use super::{OAuth, OAuthError, MAX_FORM_BYTES};
use crate::store::Store;
use crate::transport::callers::TenantScope;
use crate::transport::web::Peer;

/// A decoded form: each parameter once, UTF-8.
pub(super) type Form = HashMap<String, String>;

/// Parse an `application/x-www-form-urlencoded` body strictly.
pub(super) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim();
    let charset_ok = parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") || !charset_ok {
        return Err(OAuthError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded (UTF-8)",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let decode = |s: &str| {
        crate::authority::convert::percent_decode(s, true)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| OAuthError::invalid_request("a parameter is not UTF-8 form encoding"))
    };
    let mut form = Form::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)?;
        if form.insert(name.clone(), decode(value)?).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {:?} given more than once",
                name.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(form)
}

/// A form POST: the connection's peer, the headers, and the body, not yet
/// read: an endpoint that needs a caller authenticates it from the headers
/// first, so a caller without credentials never gets to send a body (and
/// `--http-request-timeout` bounds how long any body may take).
pub(super) struct FormRequest {
    pub(super) peer: Arc<Peer>,
    pub(super) headers: HeaderMap,
    pub(super) body: axum::body::Body,
}

impl<St: Send + Sync> axum::extract::FromRequest<St> for FormRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        req: axum::extract::Request,
        _state: &St,
    ) -> Result<Self, Self::Rejection> {
        let peer = req
            .extensions()
            .get::<Arc<Peer>>()
            .cloned()
            .unwrap_or_default();
        let (parts, body) = req.into_parts();
        Ok(FormRequest {
            peer,
            headers: parts.headers,
            body,
        })
    }
}

impl FormRequest {
    /// The caller (allowed `rpc`, budget spent) and its tenant scope, and
    /// only then the form.
    pub(super) async fn authorized<S: Store>(
        self,
        o: &OAuth<S>,
        rpc: Rpc,
    ) -> Result<(String, TenantScope, Form), OAuthError> {
        let (caller, scope) = o.caller(&self.headers, &self.peer, rpc).await?;
        Ok((caller, scope, read_form(&self.headers, self.body).await?))
    }
}

/// Read and parse a form body of at most [`MAX_FORM_BYTES`] (413 over it).
pub(super) async fn read_form(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Form, OAuthError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        if bytes.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    parse_form(headers, &bytes)
}

fn too_large() -> OAuthError {
    OAuthError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        format!("the body exceeds {MAX_FORM_BYTES} bytes"),
    )
}

pub(super) fn required<'f>(form: &'f Form, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn forms_parse_strictly() {
        let h = form_headers("application/x-www-form-urlencoded; charset=UTF-8");
        let form = parse_form(&h, b"token=a%2Bb+c&token_type_hint=access_token&").unwrap();
        assert_eq!(form["token"], "a+b c");
        assert_eq!(form["token_type_hint"], "access_token");
        for bad in [
            &b"token=a&token=b"[..],
            b"token=%ff",
            b"token=%zz",
            b"token=%4",
            b"token=\xff",
        ] {
            let e = parse_form(&h, bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(e.error, "invalid_request");
        }
        for content_type in [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded; charset=latin1",
        ] {
            let e = parse_form(&form_headers(content_type), b"token=a").unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
        }
        assert!(parse_form(&HeaderMap::new(), b"token=a").is_err());
    }
}
