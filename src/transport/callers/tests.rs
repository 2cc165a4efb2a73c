//! Unit tests of the callers file and of authorization.

use super::*;

/// The answers without the scope, as most tests want them.
impl Callers {
    /// Decide for one call: `Ok(Some(name))` for a known caller allowed to
    /// call `rpc`, `Ok(None)` in anonymous mode.
    fn authorize(
        &self,
        rpc: &str,
        api_key: Option<&[u8]>,
        peer: &PeerIdentities,
    ) -> Result<Option<String>, Error> {
        self.authorize_at(rpc, api_key, peer, "")
    }

    /// [`Callers::authorize`] for a call from `client_ip`.
    fn authorize_at(
        &self,
        rpc: &str,
        api_key: Option<&[u8]>,
        peer: &PeerIdentities,
        client_ip: &str,
    ) -> Result<Option<String>, Error> {
        self.authorize_scoped(rpc, api_key, peer, client_ip)
            .map(|found| found.map(|(name, _)| name))
    }
}

fn callers() -> Callers {
    let text = format!(
        "[[caller]]\nname = \"login\"\napi_key_sha256 = \"{}\"\nallow = [\"Issue\", \"Refresh\"]\n\n[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{}\"\nallow = [\"*\"]\n",
        api_key_sha256("login-key"),
        api_key_sha256("ops-key")
    );
    Callers::Listed(Arc::new(Callers::parse(&text).unwrap()))
}

#[test]
fn keys_and_allow_lists_decide() {
    let c = callers();
    assert_eq!(
        c.authorize("Issue", Some(b"login-key"), &PeerIdentities::default())
            .unwrap()
            .as_deref(),
        Some("login")
    );
    assert!(matches!(
        c.authorize("Revoke", Some(b"login-key"), &PeerIdentities::default()),
        Err(Error::CallerNotAllowed)
    ));
    assert!(c
        .authorize("Revoke", Some(b"ops-key"), &PeerIdentities::default())
        .is_ok());
    assert!(matches!(
        c.authorize("Issue", Some(b"wrong"), &PeerIdentities::default()),
        Err(Error::CallerUnauthenticated)
    ));
    assert!(matches!(
        c.authorize("Issue", None, &PeerIdentities::default()),
        Err(Error::CallerUnauthenticated)
    ));
    assert!(Callers::Anonymous
        .authorize("Issue", None, &PeerIdentities::default())
        .unwrap()
        .is_none());
}

#[test]
fn certificate_identities_match_only_their_own_type() {
    let text = "[[caller]]\nname = \"gw\"\ntls_uri = \"spiffe://x/gw\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"host\"\ntls_dns = \"gw.internal\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"cn\"\ntls_cn = \"legacy-client\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"old\"\ntls_identity = \"spiffe://x/old\"\nallow = [\"*\"]\n";
    let c = Callers::Listed(Arc::new(Callers::parse(text).unwrap()));
    let who = |peer: PeerIdentities| c.authorize("Issue", None, &peer).ok().flatten();
    let cn = |v: &str| PeerIdentities {
        cns: vec![v.into()],
        ..Default::default()
    };
    let uri = |v: &str| PeerIdentities {
        uris: vec![v.into()],
        ..Default::default()
    };
    let dns = |v: &str| PeerIdentities {
        dns: vec![v.into()],
        ..Default::default()
    };
    assert_eq!(who(uri("spiffe://x/gw")).as_deref(), Some("gw"));
    assert_eq!(who(cn("spiffe://x/gw")), None, "a CN is not a URI SAN");
    assert_eq!(who(dns("spiffe://x/gw")), None);
    assert_eq!(who(dns("gw.internal")).as_deref(), Some("host"));
    assert_eq!(who(cn("gw.internal")), None, "a CN is not a DNS SAN");
    assert_eq!(who(cn("legacy-client")).as_deref(), Some("cn"));
    assert_eq!(who(uri("legacy-client")), None);
    // The older key: a URI SAN when it has a scheme, never the CN.
    assert_eq!(who(uri("spiffe://x/old")).as_deref(), Some("old"));
    assert_eq!(who(cn("spiffe://x/old")), None);
    // One identity per entry.
    assert!(Callers::parse(
        "[[caller]]\nname = \"x\"\ntls_uri = \"a://b\"\ntls_cn = \"b\"\nallow = [\"*\"]\n"
    )
    .is_err());
}

#[test]
fn tenants_scope_a_caller() {
    let h = api_key_sha256("k");
    let g = api_key_sha256("g");
    let text = format!(
        "[[caller]]\nname = \"acme\"\napi_key_sha256 = \"{h}\"\nallow = [\"*\"]\ntenants = [\"acme\", \"initech\"]\n\n[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{g}\"\nallow = [\"*\"]\n"
    );
    let c = Callers::Listed(Arc::new(Callers::parse(&text).unwrap()));
    let none = PeerIdentities::default();
    let (name, scope) = c
        .authorize_scoped("Issue", Some(b"k"), &none, "")
        .unwrap()
        .unwrap();
    assert_eq!(name, "acme");
    assert!(scope.allows("acme") && scope.allows("initech") && !scope.allows("globex"));
    let (_, scope) = c
        .authorize_scoped("Issue", Some(b"g"), &none, "")
        .unwrap()
        .unwrap();
    assert_eq!(scope, TenantScope::All, "no tenants: platform-wide");
    // An empty list, or a name no tenant can have, is refused.
    for tenants in ["[]", "[\"a\\u202eb\"]", &format!("[{:?}]", "x".repeat(257))] {
        let text = format!(
            "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"*\"]\ntenants = {tenants}\n"
        );
        assert!(Callers::parse(&text).is_err(), "{tenants}");
    }
}

#[test]
fn exchange_audiences_are_per_caller() {
    let h = api_key_sha256("k");
    let text = format!(
        "[[caller]]\nname = \"svc\"\napi_key_sha256 = \"{h}\"\nallow = [\"Exchange\"]\nexchange_audiences = [\"billing\"]\n\n[[caller]]\nname = \"other\"\napi_key_sha256 = \"{}\"\nallow = [\"Exchange\"]\n",
        api_key_sha256("k2")
    );
    let c = Callers::Listed(Arc::new(Callers::parse(&text).unwrap()));
    assert!(c.exchange_audiences("svc").allows("billing"));
    assert!(!c.exchange_audiences("svc").allows("payroll"));
    assert!(!c.exchange_audiences("other").allows("billing"));
    assert!(!c.exchange_audiences("nobody").allows("billing"));
    assert!(Callers::Anonymous
        .exchange_audiences("anonymous")
        .allows("x"));
    assert_eq!(c.authenticate(b"k2").as_deref(), Some("other"));
    assert_eq!(c.authenticate(b"nope"), None);
    assert!(Callers::parse(&format!(
        "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"Exchange\"]\nexchange_audiences = [\"\"]\n"
    ))
    .is_err());
}

#[test]
fn bad_files_are_refused() {
    assert!(Callers::parse(
        "[[caller]]\nname = \"x\"\napi_key_sha256 = \"abc\"\nallow = [\"Issue\"]\n"
    )
    .is_err());
    let h = api_key_sha256("k");
    assert!(Callers::parse(&format!(
        "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"Mint\"]\n"
    ))
    .is_err());
    assert!(Callers::parse("[[caller]]\nname = \"x\"\nallow = [\"Issue\"]\n").is_err());
    assert!(Callers::parse(&format!(
        "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = []\n[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = []\n"
    ))
    .is_err());
}
