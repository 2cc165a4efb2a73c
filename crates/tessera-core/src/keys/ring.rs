//! The default keys and every tenant's own, and the ring that swaps them
//! whole on reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::keyset::KeySet;
use super::lookup::{next_generation, KeyLookup, VerifyingKey, Vouches};

// === impl Keys ===

/// A tenant's own issuer and keys (`--tenants`).
pub struct TenantKeys {
    pub issuer: String,
    pub keys: KeySet,
}

/// Two key sets hold the same key: refused, since a key must vouch for
/// exactly one owner.
#[derive(Debug, thiserror::Error)]
#[error("key {kid} belongs to both {first} and {second}: every tenant needs a key of its own")]
pub struct SharedKey {
    pub kid: String,
    pub first: String,
    pub second: String,
}

/// The default keys and every tenant's own, as one lookup: a `kid` names
/// exactly one owner, and [`KeyLookup::vouches`] answers which.
pub struct Keys {
    default: Arc<KeySet>,
    tenants: HashMap<String, TenantKeys>,
    /// `kid` → the tenant it belongs to (`None`: the default keys).
    owners: HashMap<String, Option<String>>,
    generation: u64,
}

impl Keys {
    /// The default keys alone (no `--tenants`).
    pub fn single(default: KeySet) -> Self {
        let owners = default
            .verifiers
            .keys()
            .map(|k| (k.clone(), None))
            .collect();
        Keys {
            default: Arc::new(default),
            tenants: HashMap::new(),
            owners,
            generation: next_generation(),
        }
    }

    /// The default keys and each tenant's. A key in two sets is refused.
    pub fn new(default: KeySet, tenants: HashMap<String, TenantKeys>) -> Result<Self, SharedKey> {
        Self::build(Arc::new(default), tenants)
    }

    /// These tenants' keys with `default` as the default keys (a reload
    /// keeps an ephemeral default key: a new one would end its tokens).
    pub fn with_default(self, default: Arc<KeySet>) -> Result<Self, SharedKey> {
        Self::build(default, self.tenants)
    }

    fn build(
        default: Arc<KeySet>,
        tenants: HashMap<String, TenantKeys>,
    ) -> Result<Self, SharedKey> {
        let mut owners: HashMap<String, Option<String>> = HashMap::new();
        let name = |o: &Option<String>| match o {
            None => "the default keys".to_owned(),
            Some(t) => format!("tenant {t:?}"),
        };
        let sets = std::iter::once((None, default.as_ref()))
            .chain(tenants.iter().map(|(t, k)| (Some(t.clone()), &k.keys)));
        for (owner, set) in sets {
            for kid in set.verifiers.keys() {
                if let Some(first) = owners.insert(kid.clone(), owner.clone()) {
                    return Err(SharedKey {
                        kid: kid.clone(),
                        first: name(&first),
                        second: name(&owner),
                    });
                }
            }
        }
        Ok(Keys {
            default,
            tenants,
            owners,
            generation: next_generation(),
        })
    }

    /// The default keys, shared (see [`Keys::with_default`]).
    pub fn default_keys_arc(&self) -> Arc<KeySet> {
        self.default.clone()
    }

    /// The default keys: those of every tenant without its own.
    pub fn default_keys(&self) -> &KeySet {
        &self.default
    }

    /// A tenant's own issuer and keys, if it has them.
    pub fn tenant(&self, tenant: &str) -> Option<&TenantKeys> {
        self.tenants.get(tenant)
    }

    /// Tenants with keys of their own, sorted.
    pub fn tenant_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The keys that sign `tenant`'s tokens: its own, else the default.
    pub fn signer_for(&self, tenant: &str) -> &KeySet {
        self.tenant(tenant)
            .map_or(self.default.as_ref(), |t| &t.keys)
    }

    /// The issuer of `tenant`'s tokens: its own, else `default_issuer`.
    pub fn issuer_for<'a>(&'a self, tenant: &str, default_issuer: &'a str) -> &'a str {
        self.tenant(tenant).map_or(default_issuer, |t| &t.issuer)
    }
}

impl KeyLookup for Keys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        match self.owners.get(kid)? {
            None => self.default.verifying_key(kid),
            Some(t) => self.tenants.get(t)?.keys.verifying_key(kid),
        }
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn vouches(&self, kid: &str) -> Vouches<'_> {
        match self.owners.get(kid) {
            Some(Some(t)) => match self.tenants.get_key_value(t) {
                Some((tenant, keys)) => Vouches::Tenant {
                    tenant,
                    issuer: &keys.issuer,
                },
                None => Vouches::Default,
            },
            _ => Vouches::Default,
        }
    }

    fn has_own_keys(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }
}

/// The keys in force, replaced whole on reload (SIGHUP), so a request
/// sees either the old keys or the new ones, never a mix.
pub struct KeyRing(RwLock<Arc<Keys>>);

impl KeyRing {
    pub fn new(keys: Keys) -> Self {
        KeyRing(RwLock::new(Arc::new(keys)))
    }

    pub fn current(&self) -> Arc<Keys> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, keys: Keys) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }
}
