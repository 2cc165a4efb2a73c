//! TLS and mTLS on the gRPC port, with certificates made in the test:
//! handshakes, callers identified by their certificate (SPIFFE URI SAN).

use crate::support::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use tessera::pb;
use tessera::pb::token_authority_client::TokenAuthorityClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tessera test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca_params,
            ca_key,
        }
    }

    /// (cert PEM, key PEM) for `cn` with extra SANs.
    pub(crate) fn leaf(&self, cn: &str, dns: &[&str], uris: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().unwrap()));
        }
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub(crate) async fn tls_client(
    server: &Server,
    pki: &Pki,
    identity: Option<&(String, String)>,
) -> Result<Client, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(TokenAuthorityClient::new(channel))
}

pub(crate) fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let env = Env::new(Backend::Memory).await;
    // Health is probed over plaintext by the harness: spawn without waiting.
    let server = Server::spawn(&env.flags(&[
        &format!("--tls-cert={}", write(&dir, "c.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "k.pem", &key)),
    ]))
    .await;
    let mut c = tls_client(&server, &pki, None)
        .await
        .expect("TLS handshake");
    let pair = issue(&mut c, "alice").await;
    c.verify(verify_request(&pair.access_token))
        .await
        .expect("verify over TLS");
    // Plaintext to a TLS port does not work.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(TokenAuthorityClient::new(ch)
            .get_jwks(pb::GetJwksRequest::default())
            .await
            .is_err());
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_identifies_callers_by_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let login = pki.leaf("login", &[], &["spiffe://example.org/login"]);
    let stranger = pki.leaf("stranger", &[], &["spiffe://example.org/stranger"]);
    let other_ca = Pki::new();
    let forged = other_ca.leaf("login", &[], &["spiffe://example.org/login"]);
    let callers = write(
        &dir,
        "callers.toml",
        "[[caller]]\nname = \"login\"\ntls_identity = \"spiffe://example.org/login\"\nallow = [\"Issue\", \"Refresh\"]\n\n[[caller]]\nname = \"legacy\"\ntls_cn = \"legacy-client\"\nallow = [\"Issue\"]\n",
    );
    let env = Env::new(Backend::Memory).await;
    // Health is probed over plaintext by the harness: spawn without waiting.
    let server = Server::spawn(&env.flags(&[
        &format!("--tls-cert={}", write(&dir, "c.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "k.pem", &key)),
        &format!("--tls-client-ca={}", write(&dir, "ca.pem", &pki.ca_pem)),
        &format!("--callers={callers}"),
    ]))
    .await;

    let mut c = tls_client(&server, &pki, Some(&login))
        .await
        .expect("mTLS handshake");
    let pair = issue(&mut c, "alice").await;
    refreshed(&mut c, &pair.refresh_token).await;
    expect_reason(
        c.verify(verify_request(&pair.access_token)).await,
        "CALLER_NOT_ALLOWED",
    );

    let mut s = tls_client(&server, &pki, Some(&stranger))
        .await
        .expect("a valid cert of an unknown caller");
    expect_reason(s.issue(issue_request("x")).await, "CALLER_UNAUTHENTICATED");

    // Red-team finding: the SPIFFE id in the common name, no URI SAN. A CN
    // is not a URI SAN: refused (it was accepted as `login` before).
    let cn_only = pki.leaf("spiffe://example.org/login", &[], &[]);
    let mut s = tls_client(&server, &pki, Some(&cn_only))
        .await
        .expect("a valid cert of an unknown caller");
    expect_reason(s.issue(issue_request("x")).await, "CALLER_UNAUTHENTICATED");
    // A caller known by its common name, explicitly typed, is accepted.
    let legacy = pki.leaf("legacy-client", &[], &[]);
    let mut l = tls_client(&server, &pki, Some(&legacy))
        .await
        .expect("mTLS handshake");
    issue(&mut l, "bob").await;

    // No client certificate, or one from another CA: no handshake, no call.
    for identity in [None, Some(&forged)] {
        if let Ok(mut c) = tls_client(&server, &pki, identity).await {
            let err = c.issue(issue_request("x")).await.unwrap_err();
            assert_ne!(err.code(), tonic::Code::Ok);
            assert!(
                tessera::error::status_reason(&err).is_none(),
                "refused at the handshake: {err:?}"
            );
        }
    }
    server.stop().await.unwrap();
}

fn thumbprint(cert_pem: &str) -> String {
    tessera_core::checks::cert_thumbprint(pem::parse(cert_pem).unwrap().contents())
}

/// RFC 8705 certificate-bound tokens: a session issued with a certificate's
/// `x5t#S256` gets tokens carrying `cnf.x5t#S256`, which verify only for
/// that certificate — shown on the mTLS call itself, or named by the caller
/// (a gateway that terminated the client's TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_verify_only_for_their_certificate() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let device = pki.leaf("alice-laptop", &[], &[]);
    let other = pki.leaf("mallory", &[], &[]);
    let env = Env::new(Backend::Memory).await;
    let server = Server::spawn(&env.flags(&[
        &format!("--tls-cert={}", write(&dir, "c.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "k.pem", &key)),
        &format!("--tls-client-ca={}", write(&dir, "ca.pem", &pki.ca_pem)),
    ]))
    .await;
    let mut c = tls_client(&server, &pki, Some(&device)).await.unwrap();
    let mut o = tls_client(&server, &pki, Some(&other)).await.unwrap();
    let bound_to = thumbprint(&device.0);
    let pair = c
        .issue(pb::IssueRequest {
            cert_thumbprint: bound_to.clone(),
            ..issue_request("alice")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let payload = pair.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], bound_to.as_str());
    assert!(claims["cnf"].get("dfp#S256").is_none());

    let with = |token: &str, thumbprint: &str| pb::VerifyRequest {
        cert_thumbprint: thumbprint.into(),
        ..verify_request(token)
    };
    // The holder of the certificate, on its own mTLS call.
    c.verify(with(&pair.access_token, ""))
        .await
        .expect("the bound certificate, from the connection");
    // Anyone else: refused, however the token was obtained.
    expect_reason(
        o.verify(with(&pair.access_token, "")).await,
        "TOKEN_BINDING_MISMATCH",
    );
    let other_print = thumbprint(&other.0);
    expect_reason(
        c.verify(with(&pair.access_token, &other_print)).await,
        "TOKEN_BINDING_MISMATCH",
    );
    // A gateway names the certificate its client showed.
    o.verify(with(&pair.access_token, &bound_to))
        .await
        .expect("named by the caller");
    // Rotation keeps the binding.
    let next = refreshed(&mut c, &pair.refresh_token).await;
    expect_reason(
        o.verify(with(&next.access_token, "")).await,
        "TOKEN_BINDING_MISMATCH",
    );
    c.verify(with(&next.access_token, "")).await.expect("bound");
    // An unbound token ignores a presented certificate.
    let free = issue(&mut o, "bob").await;
    c.verify(with(&free.access_token, &other_print))
        .await
        .expect("unbound");
    // The listing says the session is bound.
    let page = c
        .list_sessions(pb::ListSessionsRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.sessions[0].bound);
    // A thumbprint that is not one: FIELD_INVALID on both sides.
    let status = expect_reason(
        c.issue(pb::IssueRequest {
            cert_thumbprint: "not-a-thumbprint".into(),
            ..issue_request("carol")
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["cert_thumbprint"]);
    expect_reason(
        c.verify(with(&pair.access_token, "short")).await,
        "FIELD_INVALID",
    );
    server.stop().await.unwrap();
}
