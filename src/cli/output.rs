//! What the client subcommands print: the SDK's messages as JSON objects
//! with the proto's field names and timestamps in Unix seconds.

use serde_json::{json, Value};
use tessera_client::pb;

/// A timestamp as Unix seconds, or `null`.
fn ts(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.seconds))
}

pub(super) fn pair(p: &pb::TokenPair) -> Value {
    json!({
        "access_token": p.access_token,
        "refresh_token": p.refresh_token,
        "token_type": p.token_type,
        "expires_in": p.expires_in,
        "access_expires_at": ts(&p.access_expires_at),
        "refresh_expires_at": ts(&p.refresh_expires_at),
        "session_id": p.session_id,
    })
}

pub(super) fn verified(r: pb::VerifyResponse) -> Value {
    let c = r.claims.unwrap_or_default();
    let custom = c.custom.map_or(Value::Null, |s| {
        crate::authority::convert::struct_to_json_lossy(&s)
    });
    json!({
        "claims": {
            "subject": c.subject, "tenant": c.tenant, "session_id": c.session_id,
            "token_id": c.token_id, "audience": c.audience, "roles": c.roles,
            "scopes": c.scopes, "issued_at": ts(&c.issued_at), "expires_at": ts(&c.expires_at),
            "custom": custom,
        },
        "renewed_access_token": r.renewed_access_token,
        "renewed_expires_at": ts(&r.renewed_expires_at),
        "server_time": ts(&r.server_time),
        "expires_in": r.expires_in,
    })
}

pub(super) fn event(ev: &pb::RevocationEvent) -> Value {
    let kind = pb::RevocationKind::try_from(ev.kind)
        .map(|k| k.as_str_name())
        .unwrap_or("UNKNOWN");
    json!({
        "cursor": ev.cursor, "kind": kind, "token_id": ev.token_id,
        "session_id": ev.session_id, "tenant": ev.tenant, "subject": ev.subject,
        "subject_key": ev.subject_key,
        "revoked_at": ts(&ev.revoked_at), "issued_before": ts(&ev.issued_before),
        "expires_at": ts(&ev.expires_at),
    })
}

pub(super) fn session(s: &pb::Session) -> Value {
    json!({
        "session_id": s.session_id, "created_at": ts(&s.created_at),
        "last_refreshed_at": ts(&s.last_refreshed_at),
        "idle_expires_at": ts(&s.idle_expires_at),
        "absolute_expires_at": ts(&s.absolute_expires_at),
        "device_name": s.device_name, "client_id": s.client_id,
        "ip_address": s.ip_address, "user_agent": s.user_agent,
        "bound": s.bound, "audience": s.audience, "scopes": s.scopes,
        "roles": s.roles,
    })
}
