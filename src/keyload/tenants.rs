//! `--tenants FILE`: a tenant's own issuer and signing key, and its own
//! budgets (issue #28), read here and handed down to the authority
//! (`authority::tenants::Tenants`) and the key set (`keys::Keys`).
//!
//! ```toml
//! [[tenant]]
//! name = "acme"
//! issuer = "https://auth.example.com/t/acme"
//! signing_key = "keys/acme.pem"          # relative paths: from the file's folder
//! verify_keys = ["keys/acme-next.pem"]   # optional: publish before it signs
//! issue_rate = "100:200"                 # optional: the tenant's Issues together
//! refresh_rate = "500:1000"              # optional: the tenant's Refreshes together
//! max_sessions_per_subject = 50          # optional: overrides the flag for its subjects
//! ```
//!
//! The whole file is checked at start-up, and again on every SIGHUP (a
//! file that fails then keeps what is in force): names valid as Issue's
//! `tenant` and unique; issuers non-empty, unique and not the server's
//! `--issuer` (a verifier that picks keys by issuer, as Envoy's
//! `jwt_authn` does, could not tell them apart); every key readable; no key
//! shared by two tenants or with the default keys.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::authority::tenants::{TenantLimits, Tenants};
use crate::config::{KeyAlg, RateSpec, ServeArgs, SessionCapPolicy};
use crate::keys::{Keys, TenantKeys};
use crate::store::{RateLimit, SessionCap};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    #[serde(default)]
    tenant: Vec<TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    name: String,
    issuer: String,
    signing_key: PathBuf,
    /// As `--signing-alg`: detected when absent, `hs256` must be explicit.
    #[serde(default)]
    signing_alg: Option<String>,
    #[serde(default)]
    verify_keys: Vec<PathBuf>,
    #[serde(default)]
    issue_rate: Option<String>,
    #[serde(default)]
    refresh_rate: Option<String>,
    #[serde(default)]
    max_sessions_per_subject: Option<u32>,
}

/// Load the default keys (`--signing-key`, `--verify-key`) and every
/// tenant's of `--tenants`, with the tenants' budgets.
pub fn load_tenants(args: &ServeArgs) -> Result<(Keys, Tenants), String> {
    let default = super::load_keys(args).map_err(|e| e.to_string())?;
    let Some(path) = &args.tenants else {
        return Ok((Keys::single(default), Tenants::default()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read tenants file {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let evict_oldest = args.session_cap_policy == SessionCapPolicy::EvictOldest;
    let (tenants, limits) = parse(&text, base, &args.issuer, evict_oldest)
        .map_err(|e| format!("tenants file {}: {e}", path.display()))?;
    let keys =
        Keys::new(default, tenants).map_err(|e| format!("tenants file {}: {e}", path.display()))?;
    Ok((keys, Tenants::new(limits)))
}

type Parsed = (HashMap<String, TenantKeys>, HashMap<String, TenantLimits>);

fn parse(
    text: &str,
    base: &Path,
    default_issuer: &str,
    evict_oldest: bool,
) -> Result<Parsed, String> {
    let file: TenantFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = HashMap::new();
    let mut limits = HashMap::new();
    let mut issuers = HashSet::from([default_issuer.to_owned()]);
    for t in file.tenant {
        let name = t.name;
        let mut v = crate::authority::Violations::default();
        v.name("name", &name, true);
        if v.finish().is_err() {
            return Err(format!(
                "tenant {name:?}: name must be 1 to 256 bytes of printable text, as Issue's tenant"
            ));
        }
        if keys.contains_key(&name) {
            return Err(format!("tenant {name:?} is listed twice"));
        }
        if t.issuer.is_empty() || t.issuer.chars().any(crate::authority::is_hidden_char) {
            return Err(format!(
                "tenant {name:?}: issuer must be non-empty printable text"
            ));
        }
        if !issuers.insert(t.issuer.clone()) {
            return Err(format!(
                "tenant {name:?}: issuer {:?} is already another tenant's or the server's --issuer; every issuer names one set of keys",
                t.issuer
            ));
        }
        let alg = t
            .signing_alg
            .as_deref()
            .map(str::parse::<KeyAlg>)
            .transpose()
            .map_err(|e| format!("tenant {name:?}: signing_alg: {e}"))?;
        let resolve = |p: &Path| base.join(p);
        let set = super::load_set(
            &resolve(&t.signing_key),
            alg,
            &t.verify_keys.iter().map(|p| resolve(p)).collect::<Vec<_>>(),
        )
        .map_err(|e| format!("tenant {name:?}: {e}"))?;
        let rate = |field: &str, spec: Option<String>| -> Result<Option<RateLimit>, String> {
            spec.map(|s| s.parse::<RateSpec>())
                .transpose()
                .map(|r| r.and_then(|r| r.limit()))
                .map_err(|e| format!("tenant {name:?}: {field}: {e}"))
        };
        let tenant_limits = TenantLimits {
            issue_rate: rate("issue_rate", t.issue_rate)?,
            refresh_rate: rate("refresh_rate", t.refresh_rate)?,
            session_cap: t
                .max_sessions_per_subject
                .map(|max| (max > 0).then_some(SessionCap { max, evict_oldest })),
        };
        limits.insert(name.clone(), tenant_limits);
        keys.insert(
            name,
            TenantKeys {
                issuer: t.issuer,
                keys: set,
            },
        );
    }
    Ok((keys, limits))
}
