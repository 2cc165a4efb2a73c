//! One function per client subcommand: flags → request → the SDK's call
//! → JSON.

use std::path::Path;

use serde_json::{json, Value};
use tessera_client::pb;

use super::connect::client;
use super::{fail, output, CliError};
use super::{
    IssueArgs, JwksArgs, KeygenArgs, RefreshArgs, RevokeArgs, SessionsArgs, VerifyArgs, WatchArgs,
};
use crate::config::Dur;

/// The page size `tessera sessions` asks for (it prints every page).
const SESSIONS_PAGE: i32 = 500;

pub(super) async fn issue(a: IssueArgs) -> Result<Value, CliError> {
    let claims = match &a.claims {
        None => None,
        Some(text) => {
            let value: Value =
                serde_json::from_str(text).map_err(|e| fail(format!("--claims: {e}")))?;
            let Value::Object(map) = value else {
                return Err(fail("--claims must be a JSON object"));
            };
            Some(crate::authority::convert::json_to_struct(&map))
        }
    };
    let dur = |d: Option<Dur>| {
        d.map(|d| prost_types::Duration {
            seconds: d.0.as_secs() as i64,
            nanos: 0,
        })
    };
    let msg = pb::IssueRequest {
        subject: a.subject,
        tenant: a.tenant,
        audience: a.audience,
        roles: a.roles,
        scopes: a.scopes,
        claims,
        device_fingerprint: a.device_fingerprint,
        access_ttl: dur(a.access_ttl),
        refresh_ttl: dur(a.refresh_ttl),
        device_name: a.device_name,
        client_id: a.client_id,
        ip_address: a.ip_address,
        user_agent: a.user_agent,
        cert_thumbprint: a.cert_thumbprint,
        ..Default::default()
    };
    let pair = client(&a.connect).await?.issue(msg).await?;
    Ok(output::pair(&pair))
}

pub(super) async fn refresh(a: RefreshArgs) -> Result<Value, CliError> {
    let msg = pb::RefreshRequest {
        refresh_token: a.refresh_token,
        device_fingerprint: a.device_fingerprint,
        cert_thumbprint: a.cert_thumbprint,
        ..Default::default()
    };
    let pair = client(&a.connect).await?.refresh_request(msg).await?;
    Ok(output::pair(&pair))
}

pub(super) async fn verify(a: VerifyArgs) -> Result<Value, CliError> {
    let consistency = if a.strong {
        pb::Consistency::Strong
    } else {
        pb::Consistency::Unspecified
    };
    let msg = pb::VerifyRequest {
        access_token: a.access_token,
        audience: a.audience,
        device_fingerprint: a.device_fingerprint,
        renew: a.renew,
        required_scopes: a.required_scopes,
        consistency: consistency as i32,
        cert_thumbprint: a.cert_thumbprint,
        ..Default::default()
    };
    let response = client(&a.connect).await?.verify(msg).await?;
    Ok(output::verified(response.into_inner()))
}

pub(super) async fn revoke(a: RevokeArgs) -> Result<Value, CliError> {
    use pb::revoke_request::Target;
    let t = a.target;
    let target = match (t.token, t.session, t.subject) {
        (Some(t), _, _) => Target::Token(t),
        (_, Some(s), _) => Target::SessionId(s),
        (_, _, Some(subject)) => Target::Subject(pb::SubjectRef {
            tenant: a.tenant,
            subject,
        }),
        _ => return Err(fail("one of --token, --session, --subject is required")),
    };
    let msg = pb::RevokeRequest {
        target: Some(target),
        reason: a.reason,
        keep_session_id: a.keep_session.unwrap_or_default(),
    };
    let cursor = client(&a.connect).await?.revoke(msg).await?;
    Ok(json!({ "cursor": cursor }))
}

/// Print each event as a JSON line until the server ends the stream.
pub(super) async fn watch(a: WatchArgs) -> Result<Value, CliError> {
    let msg = pb::WatchRevocationsRequest {
        after_cursor: a.after,
        include_snapshot: a.snapshot,
        mark_caught_up: false,
        tenants: a.tenant,
    };
    let mut stream = client(&a.connect).await?.watch(msg).await?;
    while let Some(ev) = stream.message().await? {
        println!("{}", output::event(&ev));
    }
    Ok(Value::Null)
}

/// Every page of a subject's sessions, as one JSON array.
pub(super) async fn sessions(a: SessionsArgs) -> Result<Value, CliError> {
    let client = client(&a.connect).await?;
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let msg = pb::ListSessionsRequest {
            tenant: a.tenant.clone(),
            subject: a.subject.clone(),
            page_size: SESSIONS_PAGE,
            page_token,
        };
        let page = client.list_sessions(msg).await?;
        out.extend(page.sessions.iter().map(output::session));
        if page.next_page_token.is_empty() {
            return Ok(Value::Array(out));
        }
        page_token = page.next_page_token;
    }
}

pub(super) async fn jwks(a: JwksArgs) -> Result<Value, CliError> {
    let r = client(&a.connect).await?.jwks_of(&a.tenant).await?;
    serde_json::from_str(&r.jwks_json).map_err(|e| fail(format!("server sent invalid JWKS: {e}")))
}

/// A new key pair: the PEM on stdout, or written to `--out` (mode 0600,
/// never over an existing file).
pub(super) fn keygen(a: KeygenArgs) -> Result<Value, CliError> {
    let pem = crate::keys::generate_pem(a.alg).map_err(fail)?;
    let Some(path) = &a.out else {
        print!("{pem}");
        return Ok(Value::Null);
    };
    write_private(path, pem.as_bytes()).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let alg = format!("{:?}", a.alg).to_lowercase();
    Ok(json!({ "written": path.display().to_string(), "alg": alg }))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
