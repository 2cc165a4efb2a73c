//! `Issue`: mint a session.

use std::time::Duration;
use tessera_core::wire::Rpc;

use serde_json::{Map, Value};
use tracing::instrument;

use super::validate::{is_hidden_char, Violations, MAX_FINGERPRINT_BYTES, MAX_NAME_BYTES};
use super::{derive_jti, fingerprint_hash, token_pair, Authority, RefreshToken};
use crate::audit;
use crate::error::Error;
use crate::pb;
use crate::store::{
    keep_until_ms, subject_key, ClientInfo, CreateOutcome, NewSession, SessionData, Store,
};
use crate::tokens::{self, RESERVED_CLAIMS};

/// Largest custom-claims object, serialized (bytes): tokens stay small.
pub const MAX_CUSTOM_CLAIMS_BYTES: usize = 4096;

/// Most custom claims (counting nested members and list entries) looked at
/// before anything is built from them.
pub const MAX_CUSTOM_CLAIM_NODES: usize = 256;

/// A validated Issue request.
pub(crate) struct IssueInput {
    pub subject: String,
    pub tenant: String,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub custom: Map<String, Value>,
    pub fingerprint: String,
    pub access_ttl: Option<Duration>,
    pub refresh_ttl: Option<Duration>,
    pub device_name: String,
    pub client_id: String,
    pub client: ClientInfo,
    pub cert_thumbprint: Option<String>,
    pub dpop_jkt: Option<String>,
}

fn ttl(
    v: &mut Violations,
    field: &'static str,
    d: Option<prost_types::Duration>,
) -> Option<Duration> {
    let d = d?;
    if d.seconds < 1 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        v.add(field, "must be at least one second");
        return None;
    }
    Some(Duration::from_secs(d.seconds as u64))
}

/// Walk a claim value: count its nodes (stopping once over `budget`) and
/// tell whether any string or member name in it holds a control character.
fn scan(value: &prost_types::Value, budget: &mut usize) -> Result<(), &'static str> {
    use prost_types::value::Kind;
    *budget = budget.checked_sub(1).ok_or("too many members")?;
    match &value.kind {
        Some(Kind::StringValue(s)) if s.chars().any(char::is_control) => {
            Err("string values must not contain control characters")
        }
        Some(Kind::StructValue(st)) => scan_struct(st, budget),
        Some(Kind::ListValue(l)) => l.values.iter().try_for_each(|v| scan(v, budget)),
        _ => Ok(()),
    }
}

fn scan_struct(st: &prost_types::Struct, budget: &mut usize) -> Result<(), &'static str> {
    st.fields.iter().try_for_each(|(k, v)| {
        if k.chars().any(char::is_control) {
            return Err("member names must not contain control characters");
        }
        scan(v, budget)
    })
}

/// The custom claims of an Issue, checked before anything is built from
/// them: first their count and encoded size (cheap walks of what prost
/// decoded, so a request stuffed with claims costs little to refuse), then
/// names and strings, and only then the JSON the token will carry.
fn custom_claims(v: &mut Violations, claims: Option<prost_types::Struct>) -> Map<String, Value> {
    use prost::Message;
    let Some(claims) = claims else {
        return Map::new();
    };
    let too_big = format!("must serialize to at most {MAX_CUSTOM_CLAIMS_BYTES} bytes");
    // The protobuf encoding of a Struct is no larger than twice its JSON.
    if claims.fields.len() > MAX_CUSTOM_CLAIM_NODES
        || claims.encoded_len() > 2 * MAX_CUSTOM_CLAIMS_BYTES
    {
        v.add("claims", too_big);
        return Map::new();
    }
    let mut budget = MAX_CUSTOM_CLAIM_NODES;
    if let Err(why) = scan_struct(&claims, &mut budget) {
        v.add("claims", why);
        return Map::new();
    }
    // RFC 7519 names are case-sensitive, but a verifier or a person that
    // reads `Sub` or `EXP` beside `sub` and `exp` may not be: refuse any
    // custom name that equals a reserved one in any case.
    let mut reserved: Vec<&str> = claims
        .fields
        .keys()
        .filter(|k| RESERVED_CLAIMS.iter().any(|r| r.eq_ignore_ascii_case(k)))
        .map(String::as_str)
        .collect();
    reserved.sort_unstable();
    if !reserved.is_empty() {
        v.add(
            "claims",
            format!("reserved claim names: {}", reserved.join(", ")),
        );
    }
    if claims
        .fields
        .keys()
        .any(|k| k.is_empty() || k.len() > MAX_NAME_BYTES || k.chars().any(is_hidden_char))
    {
        v.add(
            "claims",
            format!("claim names must be 1 to {MAX_NAME_BYTES} bytes of printable text"),
        );
    }
    let Some(custom) = crate::authority::convert::struct_to_json(claims) else {
        v.add("claims", "numbers must be finite");
        return Map::new();
    };
    if serde_json::to_string(&custom).map_or(true, |s| s.len() > MAX_CUSTOM_CLAIMS_BYTES) {
        v.add("claims", too_big);
    }
    custom
}

impl TryFrom<pb::IssueRequest> for IssueInput {
    type Error = Error;

    fn try_from(r: pb::IssueRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        v.name("subject", &r.subject, true);
        v.name("tenant", &r.tenant, false);
        v.list("audience", &r.audience, false);
        v.list("roles", &r.roles, true);
        v.list("scopes", &r.scopes, true);
        v.max_len(
            "device_fingerprint",
            &r.device_fingerprint,
            MAX_FINGERPRINT_BYTES,
        );
        let access_ttl = ttl(&mut v, "access_ttl", r.access_ttl);
        let refresh_ttl = ttl(&mut v, "refresh_ttl", r.refresh_ttl);
        let custom = custom_claims(&mut v, r.claims);
        v.name("device_name", &r.device_name, false);
        v.name("client_id", &r.client_id, false);
        let client = v.client(r.ip_address, r.user_agent);
        v.thumbprint("cert_thumbprint", &r.cert_thumbprint);
        v.thumbprint("dpop_jkt", &r.dpop_jkt);
        v.finish()?;
        Ok(IssueInput {
            subject: r.subject,
            tenant: r.tenant,
            audience: r.audience,
            roles: r.roles,
            scopes: r.scopes,
            custom,
            fingerprint: r.device_fingerprint,
            access_ttl,
            refresh_ttl,
            device_name: r.device_name,
            client_id: r.client_id,
            client,
            cert_thumbprint: (!r.cert_thumbprint.is_empty()).then_some(r.cert_thumbprint),
            dpop_jkt: (!r.dpop_jkt.is_empty()).then_some(r.dpop_jkt),
        })
    }
}

impl<S: Store> Authority<S> {
    #[instrument(level = "debug", skip_all, fields(tenant = tracing::field::Empty, session.id = tracing::field::Empty))]
    /// `caller` is the caller's name (its Issue budget, `Policy::caller_issue_rate`,
    /// and the audit trail); `scope` the tenants it may issue for.
    pub(crate) async fn issue(
        &self,
        request: pb::IssueRequest,
        caller: &str,
        scope: &crate::authority::scope::TenantScope,
    ) -> Result<pb::IssueResponse, Error> {
        let input = IssueInput::try_from(request)?;
        let who = super::tenancy::Acting {
            subject: &input.subject,
            ..super::tenancy::Acting::new(Rpc::Issue, caller, scope)
        };
        self.allow_tenant(&who, &input.tenant)?;
        let p = &self.policy;
        let now_ms = crate::clock::now_ms();
        let times = self.session_times(&input, now_ms);

        // The session lives in its subject's partition, which its id names.
        let subject_key = subject_key(&input.tenant, &input.subject);
        let sid = p.partitions.new_sid(p.partitions.of_subject(&subject_key));
        let span = tracing::Span::current();
        span.record("tenant", input.tenant.as_str());
        span.record("session.id", sid.as_str());
        let (data, client) = input.into_session(sid.clone(), &times, now_ms);
        let (access_token, claims) = self.mint_session(&data, derive_jti(&sid, 0, ""), now_ms)?;
        fits_verify(&access_token)?;
        // The tenant's own budget first: over it, nobody else's is spent.
        let tenant_limits = self.tenants.current().limits(&data.tenant);
        self.charge_tenant(
            &data.tenant,
            Rpc::Issue,
            tenant_limits.issue_rate,
            (caller, scope),
        )
        .await?;
        let refresh = RefreshToken::new(&sid);
        let refresh_exp_ms = times.refresh_exp_ms;
        let caller_key = crate::authority::caller::budget_key(caller, Rpc::Issue);
        let new_session = NewSession {
            subject_key,
            data,
            refresh_hash: refresh.hash(),
            refresh_exp_ms,
            keep_until_ms: keep_until_ms(refresh_exp_ms, now_ms, &p.feed()),
            rate_limit: p.issue_rate,
            caller_rate: p.caller_issue_rate.map(|l| (caller_key, l)),
            client,
            cap: tenant_limits.session_cap.unwrap_or(p.session_cap),
            feed: p.feed(),
        };
        let outcome = self.store.create_session(&new_session).await?;
        let data = &new_session.data;
        let mut event = audit::Event {
            tenant: &data.tenant,
            subject: &data.subject,
            session_id: &sid,
            caller,
            caller_tenants: &scope.label(),
            client_ip: &new_session.client.ip_address,
            rpc: Rpc::Issue.as_str(),
            detail: "",
        };
        self.created(outcome, &mut event).await?;
        audit::emit(audit::Kind::Issued, "ok", &event);
        self.count_tenant(&data.tenant, "issued");
        tracing::debug!("session issued");
        Ok(pb::IssueResponse {
            tokens: Some(token_pair(
                access_token,
                &claims,
                &refresh,
                refresh_exp_ms,
                now_ms,
            )),
        })
    }

    /// The lifetimes of a new session: the requested TTLs (else the
    /// defaults) capped by `--max-*-ttl`; the refresh token's expiry is
    /// the idle timeout's, never past the absolute end.
    fn session_times(&self, input: &IssueInput, now_ms: i64) -> SessionTimes {
        let p = &self.policy;
        let access_ttl = input
            .access_ttl
            .unwrap_or(p.access_ttl)
            .min(p.max_access_ttl);
        let refresh_ttl = input
            .refresh_ttl
            .unwrap_or(p.refresh_ttl)
            .min(p.max_refresh_ttl);
        let absolute_exp_ms = now_ms + p.session_lifetime.as_millis() as i64;
        let idle_ms = p
            .session_idle
            .map_or(refresh_ttl, |idle| refresh_ttl.min(idle))
            .as_millis() as i64;
        SessionTimes {
            access_ttl,
            idle_ms,
            absolute_exp_ms,
            refresh_exp_ms: (now_ms + idle_ms).min(absolute_exp_ms),
        }
    }

    /// What the store's answer to a new session means: created (its
    /// evictions audited, and read back until the feed has them), or
    /// refused by a rate limit or the session cap (audited, with no
    /// session id: the id was never a session).
    async fn created(
        &self,
        outcome: CreateOutcome,
        event: &mut audit::Event<'_>,
    ) -> Result<(), Error> {
        if !matches!(outcome, CreateOutcome::Created { .. }) {
            // Refused: the id was never a session.
            event.session_id = "";
        }
        match outcome {
            CreateOutcome::RateLimited { retry_after_ms } => {
                audit::emit(audit::Kind::RateLimited, "refused", event);
                Err(Error::RateLimited {
                    retry_after: Duration::from_millis(retry_after_ms.max(1) as u64),
                })
            }
            CreateOutcome::SessionLimit => {
                event.detail = "max sessions per subject";
                audit::emit(audit::Kind::Issued, "refused", event);
                Err(Error::SessionLimit)
            }
            CreateOutcome::Created { evicted, cursor } => {
                for old in &evicted {
                    let revoked = audit::Event {
                        session_id: old,
                        detail: "session: evicted by max sessions per subject",
                        ..event.clone()
                    };
                    audit::emit(audit::Kind::Revoked, "ok", &revoked);
                }
                self.read_own_write(&cursor).await;
                Ok(())
            }
        }
    }
}

/// The lifetimes of a new session ([`Authority::session_times`]).
struct SessionTimes {
    access_ttl: Duration,
    idle_ms: i64,
    absolute_exp_ms: i64,
    refresh_exp_ms: i64,
}

impl IssueInput {
    /// The session `sid` of this request, created at `now_ms`, and the
    /// client it was issued to.
    fn into_session(
        self,
        sid: String,
        times: &SessionTimes,
        now_ms: i64,
    ) -> (SessionData, ClientInfo) {
        let data = SessionData {
            sid,
            tenant: self.tenant,
            subject: self.subject,
            audience: self.audience,
            roles: self.roles,
            scopes: self.scopes,
            custom: self.custom,
            fingerprint_hash: fingerprint_hash(&self.fingerprint),
            access_ttl: times.access_ttl.as_secs() as i64,
            idle_ms: times.idle_ms,
            created_ms: now_ms,
            absolute_exp_ms: times.absolute_exp_ms,
            device_name: self.device_name,
            client_id: self.client_id,
            cert_thumbprint: self.cert_thumbprint,
            dpop_jkt: self.dpop_jkt,
        };
        (data, self.client)
    }
}

/// Verify refuses tokens over 8 KiB ([`tokens::MAX_TOKEN_BYTES`]): never
/// mint one; the claims that made it are the caller's to shorten.
fn fits_verify(access_token: &str) -> Result<(), Error> {
    if access_token.len() > tokens::MAX_TOKEN_BYTES {
        return Err(Error::invalid(
            "claims",
            format!(
                "audience, roles, scopes and claims together make a token over {} bytes",
                tokens::MAX_TOKEN_BYTES
            ),
        ));
    }
    Ok(())
}
