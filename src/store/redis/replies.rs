//! The scripts' replies, decoded: each reply shape is one match arm, and
//! anything else is [`StoreError::Corrupt`].

use super::{schema, StoreError};
use crate::store::{
    event_ref, ClientInfo, CreateOutcome, RenewOutcome, RotateOutcome, Rotation, SessionData,
    SessionPage, SessionView,
};

/// A session's data from `data` and the five hash fields the scripts
/// reply after it: tenant, subject, created, absolute expiry, idle ms,
/// fingerprint hash (see `schema::decode_data`).
fn parse_data(sid: &str, data: &str, rest: &[String]) -> Result<SessionData, StoreError> {
    let [tenant, subject, created, abs, idle, fp] = rest else {
        return Err(StoreError::Corrupt(
            "session fields missing from a reply".into(),
        ));
    };
    schema::decode_data(&schema::SessionFields {
        sid,
        data,
        tenant,
        subject,
        created_ms: created,
        absolute_exp_ms: abs,
        idle_ms: idle,
        fingerprint_hash: fp,
    })
}

/// A number in a reply.
pub(super) fn num(s: &str) -> Result<i64, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("expected a number, got {s:?}")))
}

/// create.lua's reply in partition `p`.
pub(super) fn create_outcome(p: u32, reply: &[String]) -> Result<CreateOutcome, StoreError> {
    match reply {
        [tag, cursor, evicted @ ..] if tag == "ok" => Ok(CreateOutcome::Created {
            evicted: evicted.to_vec(),
            cursor: if cursor.is_empty() {
                String::new()
            } else {
                event_ref(p, cursor)
            },
        }),
        [tag, wait] if tag == "limited" => Ok(CreateOutcome::RateLimited {
            retry_after_ms: num(wait)?,
        }),
        [tag] if tag == "full" => Ok(CreateOutcome::SessionLimit),
        _ => Err(StoreError::Corrupt("unexpected create reply".into())),
    }
}

/// list.lua's reply: the next position, then twelve fields per session.
pub(super) fn session_page(reply: &[String]) -> Result<SessionPage, StoreError> {
    let Some((next, rows)) = reply.split_first() else {
        return Err(StoreError::Corrupt("empty list reply".into()));
    };
    const ROW: usize = 12;
    let mut page = SessionPage {
        sessions: Vec::with_capacity(rows.len() / ROW),
        next: next.clone(),
    };
    for row in rows.chunks(ROW) {
        let [sid, data, created, rot, exp, ip, ua, tenant, subject, abs, idle, fp] = row else {
            return Err(StoreError::Corrupt("short list reply".into()));
        };
        let rest = [
            tenant.clone(),
            subject.clone(),
            created.clone(),
            abs.clone(),
            idle.clone(),
            fp.clone(),
        ];
        page.sessions.push(SessionView {
            data: parse_data(sid, data, &rest)?,
            last_refreshed_ms: num(rot)?,
            idle_exp_ms: num(exp)?,
            client: ClientInfo {
                ip_address: ip.clone(),
                user_agent: ua.clone(),
            },
        });
    }
    Ok(page)
}

/// rotate.lua's reply about session `sid` in partition `p`.
pub(super) fn rotate_outcome(
    p: u32,
    sid: &str,
    reply: &[String],
) -> Result<RotateOutcome, StoreError> {
    let rotation = |data: &str,
                    gen: &str,
                    rot: &str,
                    exp: &str,
                    rest: &[String]|
     -> Result<Rotation, StoreError> {
        Ok(Rotation {
            data: parse_data(sid, data, rest)?,
            generation: num(gen)? as u64,
            rotated_at_ms: num(rot)?,
            refresh_exp_ms: num(exp)?,
        })
    };
    match reply {
        [tag] if tag == "invalid" => Ok(RotateOutcome::Invalid),
        [tag] if tag == "fingerprint" => Ok(RotateOutcome::FingerprintMismatch),
        [tag] if tag == "binding" => Ok(RotateOutcome::BindingMismatch),
        [tag] if tag == "replayed" => Ok(RotateOutcome::ProofReplayed),
        [tag, wait] if tag == "limited" => Ok(RotateOutcome::RateLimited {
            retry_after_ms: num(wait)?,
        }),
        [tag, id] if tag == "reused" => Ok(RotateOutcome::Reused {
            cursor: event_ref(p, id),
        }),
        [tag, data, gen, rot, exp, rest @ ..] if tag == "rotated" && rest.len() == 6 => {
            Ok(RotateOutcome::Rotated(rotation(data, gen, rot, exp, rest)?))
        }
        [tag, data, gen, rot, exp, sealed, rest @ ..] if tag == "grace" && rest.len() == 6 => {
            Ok(RotateOutcome::Grace {
                rotation: rotation(data, gen, rot, exp, rest)?,
                sealed: sealed.clone(),
            })
        }
        other => Err(StoreError::Corrupt(format!(
            "unexpected rotate reply with {} fields",
            other.len()
        ))),
    }
}

/// The event id of a rotate.lua reply that revoked its session for reuse.
pub(super) fn reused_id(reply: &[String]) -> Option<&str> {
    match reply {
        [tag, id] if tag == "reused" => Some(id),
        _ => None,
    }
}

/// renew.lua's reply.
pub(super) fn renew_outcome(reply: &[String]) -> Result<RenewOutcome, StoreError> {
    match reply {
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
