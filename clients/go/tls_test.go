package tessera

// The client's credentials against a live Tessera: the x-tessera-key API
// key, and TLS with a client certificate (mTLS).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "tessera.dev/client/go/tesserapb"
)

func TestLiveAPIKey(t *testing.T) {
	key := "go-client-test-key-0123456789abcdef"
	sum := sha256.Sum256([]byte(key))
	callers := filepath.Join(t.TempDir(), "callers.toml")
	writeFile(t, callers, fmt.Sprintf(`[[caller]]
name = "verifier"
api_key_sha256 = "%s"
allow = ["*"]
`, hex.EncodeToString(sum[:])))
	s := liveServer(t, "--callers", callers)

	anon := s.client(t)
	if _, err := anon.JWKS(ctx10s(t)); Reason(err) != ReasonCallerUnauthenticated {
		t.Fatalf("without the key: %v", err)
	}
	wrong, _ := NewClient(s.addr, ClientOptions{APIKey: "not-the-key"})
	defer wrong.Close()
	if _, err := wrong.JWKS(ctx10s(t)); Reason(err) != ReasonCallerUnauthenticated {
		t.Fatalf("wrong key: %v", err)
	}
	c, err := NewClient(s.addr, ClientOptions{APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v := startVerifier(t, c, Options{Issuer: "tessera-test"})
	pair := issue(t, c, &pb.IssueRequest{Subject: "ivy"})
	if _, err := v.Verify(pair.AccessToken); err != nil {
		t.Fatal(err)
	}
	// Without the key a verifier cannot even start (GetJwks is refused).
	if _, err := NewLocalVerifier(ctx10s(t), anon, Options{}); Reason(err) != ReasonCallerUnauthenticated {
		t.Fatalf("NewLocalVerifier without the key: %v", err)
	}
}

type testPKI struct {
	dir                       string
	ca, serverCert, serverKey string
	clientCert, clientKey     string
	strangerCert, strangerKey string
	caKey                     *ecdsa.PrivateKey
	caTemplate                *x509.Certificate
	clientDER                 []byte
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newPKI(t *testing.T) *testPKI {
	p := &testPKI{dir: t.TempDir()}
	serial := int64(1)
	issueCert := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		writeFile(t, filepath.Join(p.dir, name+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
		writeFile(t, filepath.Join(p.dir, name+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
		return der, key
	}
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, caKey := issueCert(ca, nil, nil, "ca")
	caCert, _ := x509.ParseCertificate(caDER)
	issueCert(&x509.Certificate{Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, caCert, caKey, "server")
	p.clientDER, _ = issueCert(&x509.Certificate{Subject: pkix.Name{CommonName: "go-verifier"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, caCert, caKey, "client")
	issueCert(&x509.Certificate{Subject: pkix.Name{CommonName: "stranger"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, caCert, caKey, "stranger")
	f := func(n string) string { return filepath.Join(p.dir, n) }
	p.ca, p.serverCert, p.serverKey = f("ca.pem"), f("server.pem"), f("server.key")
	p.clientCert, p.clientKey = f("client.pem"), f("client.key")
	p.strangerCert, p.strangerKey = f("stranger.pem"), f("stranger.key")
	return p
}

func TestLiveMutualTLS(t *testing.T) {
	p := newPKI(t)
	callers := filepath.Join(p.dir, "callers.toml")
	writeFile(t, callers, `[[caller]]
name = "go-verifier"
tls_cn = "go-verifier"
allow = ["*"]
`)
	s := liveServer(t, "--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--tls-client-ca", p.ca, "--callers", callers)

	c, err := NewClient(s.addr, ClientOptions{CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v := startVerifier(t, c, Options{Issuer: "tessera-test"})
	pair := issue(t, c, &pb.IssueRequest{Subject: "jack", CertThumbprint: CertThumbprint(p.clientDER)})
	// Certificate-bound to our own client certificate.
	if _, err := v.VerifyContext(ctx10s(t), pair.AccessToken, VerifyOptions{CertThumbprint: CertThumbprint(p.clientDER)}); err != nil {
		t.Fatalf("over mTLS: %v", err)
	}
	// The server reads the thumbprint off the mTLS connection itself.
	if _, err := c.Verify(ctx10s(t), &pb.VerifyRequest{AccessToken: pair.AccessToken}); err != nil {
		t.Fatalf("server Verify over mTLS, bound to our certificate: %v", err)
	}

	// A certificate the callers file does not know: refused.
	stranger, _ := NewClient(s.addr, ClientOptions{CAFile: p.ca, CertFile: p.strangerCert, KeyFile: p.strangerKey})
	defer stranger.Close()
	if _, err := stranger.JWKS(ctx10s(t)); Reason(err) != ReasonCallerUnauthenticated {
		t.Fatalf("unknown certificate: %v", err)
	}
	// No client certificate, or no TLS: no call gets through.
	noCert, _ := NewClient(s.addr, ClientOptions{CAFile: p.ca})
	defer noCert.Close()
	if _, err := noCert.JWKS(ctx10s(t)); err == nil {
		t.Fatal("TLS without a client certificate answered")
	}
	plain, _ := NewClient(s.addr, ClientOptions{})
	defer plain.Close()
	if _, err := plain.JWKS(ctx10s(t)); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext to a TLS port: %v", err)
	}
	// A CA that did not sign the server's certificate: refused by the client.
	other := newPKI(t)
	wrongCA, _ := NewClient(s.addr, ClientOptions{CAFile: other.ca, CertFile: p.clientCert, KeyFile: p.clientKey})
	defer wrongCA.Close()
	if _, err := wrongCA.JWKS(ctx10s(t)); status.Code(err) != codes.Unavailable {
		t.Fatalf("server certificate from an unknown CA: %v", err)
	}
	if _, err := NewClient(s.addr, ClientOptions{CAFile: filepath.Join(p.dir, "missing.pem")}); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
