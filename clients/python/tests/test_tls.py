"""TLS and mTLS: the client and the LocalVerifier against Tessera with
--tls-cert/--tls-key/--tls-client-ca (certificates made here)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Stack
from tessera_client import LocalVerifier, TesseraClient, TokenError, cert_thumbprint


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, san=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def pki(tmp_path: Path) -> dict:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("tessera test CA", ca_key, _name("tessera test CA"), ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("localhost", ca_key, ca.subject, srv_key, ca=False,
                san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("billing-service", ca_key, ca.subject, cli_key, ca=False,
                san=[x509.DNSName("billing.internal")])
    files = {}
    for name, data in [("ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
                       ("server.pem", srv.public_bytes(serialization.Encoding.PEM)),
                       ("server-key.pem", _pem_key(srv_key))]:
        (tmp_path / name).write_bytes(data)
        files[name] = tmp_path / name
    return {
        "files": files,
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "client_cert": cli.public_bytes(serialization.Encoding.PEM),
        "client_key": _pem_key(cli_key),
        "client_der": cli.public_bytes(serialization.Encoding.DER),
    }


def test_mtls_client_and_verifier(stack: Stack, pki: dict):
    f = pki["files"]
    t = stack.tessera(extra=["--tls-cert", str(f["server.pem"]), "--tls-key",
                             str(f["server-key.pem"]), "--tls-client-ca", str(f["ca.pem"])])
    tls = dict(root_certificates=pki["ca"], private_key=pki["client_key"],
               certificate_chain=pki["client_cert"])
    thumb = cert_thumbprint(pki["client_der"])
    with TesseraClient(t.target, **tls) as c:
        pair = c.issue("alice", audience=["api"], cert_thumbprint=thumb)
        # over mTLS the server takes the thumbprint of the caller's own certificate
        assert c.verify(pair.access_token, audience="api").claims.subject == "alice"
        with LocalVerifier(t.target, issuer="tessera-test", audience="api", **tls) as v:
            assert v.in_sync
            assert v.verify(pair.access_token, cert_thumbprint=thumb).subject == "alice"
            with pytest.raises(TokenError) as e:
                v.verify(pair.access_token)
            assert e.value.reason == "TOKEN_BINDING_MISMATCH"
    # TLS without a client certificate: the server refuses the handshake/call
    with TesseraClient(t.target, root_certificates=pki["ca"], timeout=5) as anon:
        with pytest.raises(TokenError) as e:
            anon.jwks()
        assert e.value.reason in ("UNKNOWN", "CALLER_UNAUTHENTICATED")
    # plaintext against a TLS port fails too
    with TesseraClient(t.target, timeout=5) as plain:
        with pytest.raises(TokenError) as e:
            plain.jwks()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_options_are_checked():
    with pytest.raises(ValueError):
        TesseraClient("127.0.0.1:1", private_key=b"k")
