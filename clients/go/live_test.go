package tessera

// Live scenarios against a real Tessera on a real Redis.

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "tessera.dev/client/go/tesserapb"
)

// liveServer is a Tessera (issuer tessera-test) on its own Redis.
func liveServer(t *testing.T, extra ...string) *tesseraServer {
	t.Helper()
	r := startRedis(t)
	key := keygen(t, "eddsa")
	args := append([]string{"--issuer", "tessera-test", "--signing-key", key, "--redis-url", r.url}, extra...)
	return startTessera(t, args...)
}

func issue(t *testing.T, c *Client, req *pb.IssueRequest) *pb.TokenPair {
	t.Helper()
	if req.Audience == nil {
		req.Audience = []string{"api"}
	}
	pair, err := c.Issue(ctx10s(t), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return pair
}

// deniedWithin polls Verify until it gives reason; it answers how long that took.
func deniedWithin(t *testing.T, v *LocalVerifier, token, reason string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	ok := waitFor(bound, func() bool {
		_, last = v.Verify(token)
		return Reason(last) == reason
	})
	took := time.Since(start)
	if !ok {
		t.Fatalf("not denied with %s within %v (last: %v)", reason, bound, last)
	}
	return took
}

// OnRevocation is called once per event, after it is applied: Verify
// already denies from inside the callback.
func TestLiveOnRevocationAfterApply(t *testing.T) {
	s := liveServer(t)
	c := s.client(t)
	ctx := ctx10s(t)
	pair := issue(t, c, &pb.IssueRequest{Subject: "hooked", Tenant: "acme"})
	type seen struct{ kind, id, reason string }
	events := make(chan seen, 8)
	var v *LocalVerifier
	ready := make(chan struct{}) // v is set (a fresh store: no snapshot events)
	v = startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api", OnRevocation: func(kind, id string) {
		<-ready
		_, err := v.Verify(pair.AccessToken)
		events <- seen{kind, id, Reason(err)}
	}})
	close(ready)
	if _, err := v.Verify(pair.AccessToken); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if _, err := c.RevokeSession(ctx, pair.SessionId); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	select {
	case e := <-events:
		if e != (seen{"session", pair.SessionId, ReasonTokenRevoked}) {
			t.Fatalf("OnRevocation saw %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnRevocation not called within 5 s")
	}
	second := issue(t, c, &pb.IssueRequest{Subject: "hooked-token", Tenant: "acme"})
	claims, err := v.Verify(second.AccessToken)
	if err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if _, err := c.RevokeToken(ctx, second.AccessToken); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	select {
	case e := <-events:
		if e.kind != "token" || e.id != claims.TokenID {
			t.Fatalf("OnRevocation saw %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnRevocation not called for a token within 5 s")
	}
}

func TestLiveRevocationPropagates(t *testing.T) {
	s := liveServer(t)
	c := s.client(t)
	v := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api"})
	ctx := ctx10s(t)

	cases := []struct {
		name   string
		revoke func(p *pb.TokenPair) error
	}{
		{"token", func(p *pb.TokenPair) error { _, err := c.RevokeToken(ctx, p.AccessToken); return err }},
		{"session", func(p *pb.TokenPair) error { _, err := c.RevokeSession(ctx, p.SessionId); return err }},
		{"subject", func(p *pb.TokenPair) error { _, err := c.RevokeSubject(ctx, "acme", "subject-subject"); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pair := issue(t, c, &pb.IssueRequest{Subject: "subject-" + tc.name, Tenant: "acme", Scopes: []string{"read"}})
			other := issue(t, c, &pb.IssueRequest{Subject: "bystander-" + tc.name, Tenant: "acme"})
			claims, err := v.Verify(pair.AccessToken)
			if err != nil {
				t.Fatalf("fresh token: %v", err)
			}
			if claims.Subject != "subject-"+tc.name || claims.SessionID != pair.SessionId || claims.Tenant != "acme" {
				t.Fatalf("claims %+v", claims)
			}
			if err := tc.revoke(pair); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			took := deniedWithin(t, v, pair.AccessToken, ReasonTokenRevoked, time.Second)
			t.Logf("revoked by %s: denied after %v", tc.name, took)
			// The server agrees, and a bystander is untouched.
			_, err = c.Verify(ctx, &pb.VerifyRequest{AccessToken: pair.AccessToken})
			if Reason(err) != ReasonTokenRevoked {
				t.Fatalf("server Verify: %v", err)
			}
			if _, err := v.Verify(other.AccessToken); err != nil {
				t.Fatalf("bystander: %v", err)
			}
		})
	}
	// A subject revoked: a token issued after the cut-off (a later second) lives.
	time.Sleep(1100 * time.Millisecond)
	fresh := issue(t, c, &pb.IssueRequest{Subject: "subject-subject", Tenant: "acme"})
	if _, err := v.Verify(fresh.AccessToken); err != nil {
		t.Fatalf("token issued after the subject cut-off: %v", err)
	}
}

// An exchanged token (RFC 8693, issue #29) is an access token of its
// parent's session: it verifies for its own audience and dies with that
// session through the feed.
func TestLiveExchangedTokenDiesWithItsParentSession(t *testing.T) {
	s := liveServer(t)
	c := s.client(t)
	v := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "billing"})
	ctx := ctx10s(t)
	pair := issue(t, c, &pb.IssueRequest{Subject: "exchange-user", Tenant: "acme", Scopes: []string{"read", "write"}})
	derived, err := c.Exchange(ctx, &pb.ExchangeRequest{
		SubjectToken: pair.AccessToken,
		Audience:     []string{"billing"},
		Scopes:       []string{"read"},
	})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	claims, err := v.Verify(derived.AccessToken)
	if err != nil {
		t.Fatalf("derived token: %v", err)
	}
	if claims.Subject != "exchange-user" || claims.SessionID != pair.SessionId || len(claims.Scopes) != 1 || claims.Scopes[0] != "read" {
		t.Fatalf("claims %+v", claims)
	}
	if _, err := v.Verify(pair.AccessToken); Reason(err) != "AUDIENCE_MISMATCH" {
		t.Fatalf("the parent is not for billing: %v", err)
	}
	if _, err := c.RevokeSession(ctx, pair.SessionId); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	took := deniedWithin(t, v, derived.AccessToken, ReasonTokenRevoked, time.Second)
	t.Logf("derived token denied after %v", took)
}

func TestLiveCursorFromAnotherDeployment(t *testing.T) {
	a := liveServer(t)
	ca := a.client(t)
	va := startVerifier(t, ca, Options{Issuer: "tessera-test"})
	pa := issue(t, ca, &pb.IssueRequest{Subject: "alice"})
	if _, err := ca.RevokeToken(ctx10s(t), pa.AccessToken); err != nil {
		t.Fatal(err)
	}
	deniedWithin(t, va, pa.AccessToken, ReasonTokenRevoked, time.Second)
	cursor := va.Cursor()
	if cursor == "" {
		t.Fatal("no cursor after an event")
	}

	b := liveServer(t)
	cb := b.client(t)
	// The server refuses A's cursor...
	stream, err := cb.WatchRevocations(ctx10s(t), &pb.WatchRevocationsRequest{AfterCursor: cursor, MarkCaughtUp: true})
	if err == nil {
		_, err = stream.Recv()
	}
	if Reason(err) != ReasonCursorInvalid {
		t.Fatalf("B on A's cursor: %v (want CURSOR_INVALID)", err)
	}
	// ...so the verifier drops it, resyncs from a snapshot and works.
	vb := startVerifier(t, cb, Options{Issuer: "tessera-test", ResumeCursor: cursor})
	if vb.Resyncs() < 1 {
		t.Fatalf("resyncs = %d", vb.Resyncs())
	}
	pb1 := issue(t, cb, &pb.IssueRequest{Subject: "bob"})
	if _, err := vb.Verify(pb1.AccessToken); err != nil {
		t.Fatalf("after resync: %v", err)
	}
	if _, err := cb.RevokeSession(ctx10s(t), pb1.SessionId); err != nil {
		t.Fatal(err)
	}
	deniedWithin(t, vb, pb1.AccessToken, ReasonTokenRevoked, time.Second)
	if vb.Cursor() == "" || vb.Cursor() == cursor {
		t.Fatalf("cursor not replaced after resync")
	}
}

func TestLiveFailsClosedWhenServerDies(t *testing.T) {
	s := liveServer(t)
	c := s.client(t)
	v := startVerifier(t, c, Options{Issuer: "tessera-test", MaxBackoff: 200 * time.Millisecond})
	pair := issue(t, c, &pb.IssueRequest{Subject: "carol"})
	if _, err := v.Verify(pair.AccessToken); err != nil {
		t.Fatal(err)
	}
	s.kill()
	// The stream breaks at once on loopback (RST); keepalive bounds a
	// silent peer at ~13 s. Assert the quick case with margin.
	took := deniedWithin(t, v, pair.AccessToken, ReasonStoreUnavailable, 5*time.Second)
	t.Logf("STORE_UNAVAILABLE %v after SIGKILL", took)
	time.Sleep(300 * time.Millisecond)
	if _, err := v.Verify(pair.AccessToken); Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("still failing closed: %v", err)
	}
	// Back: it reconnects (resuming from its cursor) and verifies again.
	s.start()
	if !waitFor(10*time.Second, v.InSync) {
		t.Fatal("verifier did not resync after the server came back")
	}
	if _, err := v.Verify(pair.AccessToken); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestLiveKeyRotation(t *testing.T) {
	r := startRedis(t)
	keyA := keygen(t, "eddsa")
	keyB := keygen(t, "es256")
	signing := keyA + ".signing"
	copyFile(t, keyA, signing)
	s := startTessera(t, "--issuer", "tessera-test", "--signing-key", signing, "--redis-url", r.url)
	c := s.client(t)
	v := startVerifier(t, c, Options{Issuer: "tessera-test", MinRefetch: 10 * time.Millisecond})
	tokenA := issue(t, c, &pb.IssueRequest{Subject: "dave"}).AccessToken
	if _, err := v.Verify(tokenA); err != nil {
		t.Fatalf("token of A: %v", err)
	}
	jwksBefore, _ := c.JWKS(ctx10s(t))
	// Rotate: B signs, A is dropped (no --verify-key), SIGHUP re-reads.
	copyFile(t, keyB, signing)
	s.sighup()
	if !waitFor(10*time.Second, func() bool { j, err := c.JWKS(ctx10s(t)); return err == nil && j != jwksBefore }) {
		t.Fatal("SIGHUP did not change the JWK set")
	}
	tokenB := issue(t, c, &pb.IssueRequest{Subject: "dave"}).AccessToken
	claims, err := v.Verify(tokenB)
	if err != nil {
		t.Fatalf("token of B (unknown kid -> refetch): %v", err)
	}
	if claims.Subject != "dave" {
		t.Fatalf("claims %+v", claims)
	}
	if _, err := v.Verify(tokenA); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("token of dropped key A: %v", err)
	}
	if _, err := c.Verify(ctx10s(t), &pb.VerifyRequest{AccessToken: tokenA}); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("server on token of A: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomThumbprint(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return b64Encode(h[:])
}

func TestLiveBoundTokens(t *testing.T) {
	s := liveServer(t)
	c := s.client(t)
	v := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api"})
	ctx := ctx10s(t)

	// DPoP-bound: refused without a proof, with the server's reason.
	dpop := issue(t, c, &pb.IssueRequest{Subject: "erin", DpopJkt: randomThumbprint(t)})
	_, serverErr := c.Verify(ctx, &pb.VerifyRequest{AccessToken: dpop.AccessToken, Audience: "api"})
	_, localErr := v.Verify(dpop.AccessToken)
	t.Logf("DPoP-bound without proof: server %s, local %s", Reason(serverErr), Reason(localErr))
	if Reason(serverErr) == "" || Reason(localErr) != Reason(serverErr) {
		t.Fatalf("DPoP-bound without proof: server %v, local %v", serverErr, localErr)
	}

	// Certificate-bound: refused without or with another thumbprint, as the server.
	print := randomThumbprint(t)
	cert := issue(t, c, &pb.IssueRequest{Subject: "frank", CertThumbprint: print})
	for _, presented := range []string{"", randomThumbprint(t)} {
		_, serverErr := c.Verify(ctx, &pb.VerifyRequest{AccessToken: cert.AccessToken, Audience: "api", CertThumbprint: presented})
		_, localErr := v.VerifyContext(ctx, cert.AccessToken, VerifyOptions{CertThumbprint: presented})
		if Reason(serverErr) != ReasonTokenBindingMismatch || Reason(localErr) != Reason(serverErr) {
			t.Fatalf("cert-bound, presented %v: server %v, local %v", presented != "", serverErr, localErr)
		}
	}
	claims, err := v.VerifyContext(ctx, cert.AccessToken, VerifyOptions{CertThumbprint: print})
	if err != nil {
		t.Fatalf("cert-bound with its thumbprint: %v", err)
	}
	if claims.Cnf == nil || claims.Cnf.CertThumbprintSHA256 != print {
		t.Fatalf("cnf %+v", claims.Cnf)
	}
	if _, err := c.Verify(ctx, &pb.VerifyRequest{AccessToken: cert.AccessToken, CertThumbprint: print}); err != nil {
		t.Fatalf("server, cert-bound with its thumbprint: %v", err)
	}

	// Device-bound: the fingerprint, as the server.
	dev := issue(t, c, &pb.IssueRequest{Subject: "gina", DeviceFingerprint: "device-1"})
	for _, fp := range []string{"", "device-2"} {
		_, serverErr := c.Verify(ctx, &pb.VerifyRequest{AccessToken: dev.AccessToken, DeviceFingerprint: fp})
		_, localErr := v.VerifyContext(ctx, dev.AccessToken, VerifyOptions{Fingerprint: fp})
		if Reason(serverErr) != ReasonFingerprintMismatch || Reason(localErr) != Reason(serverErr) {
			t.Fatalf("device-bound, fingerprint %q: server %v, local %v", fp, serverErr, localErr)
		}
	}
	if _, err := v.VerifyContext(ctx, dev.AccessToken, VerifyOptions{Fingerprint: "device-1"}); err != nil {
		t.Fatalf("device-bound with its fingerprint: %v", err)
	}

	// Scopes and audience, as the server.
	sc := issue(t, c, &pb.IssueRequest{Subject: "hank", Scopes: []string{"read"}})
	_, serverErr = c.Verify(ctx, &pb.VerifyRequest{AccessToken: sc.AccessToken, RequiredScopes: []string{"write"}})
	_, localErr = v.VerifyContext(ctx, sc.AccessToken, VerifyOptions{RequiredScopes: []string{"write"}})
	if Reason(serverErr) != ReasonScopeMissing || Reason(localErr) != ReasonScopeMissing {
		t.Fatalf("scope: server %v, local %v", serverErr, localErr)
	}
	if st, _ := status.FromError(serverErr); st.Code() != codes.PermissionDenied {
		t.Fatalf("server code %v", st.Code())
	}
	var te *TokenError
	if !errors.As(localErr, &te) || te.Code != codes.PermissionDenied {
		t.Fatalf("local code: %v", localErr)
	}
	_, serverErr = c.Verify(ctx, &pb.VerifyRequest{AccessToken: sc.AccessToken, Audience: "other"})
	_, localErr = v.VerifyContext(ctx, sc.AccessToken, VerifyOptions{Audience: "other"})
	if Reason(serverErr) != ReasonAudienceMismatch || Reason(localErr) != ReasonAudienceMismatch {
		t.Fatalf("audience: server %v, local %v", serverErr, localErr)
	}
}

// TestLiveHostileCasesMatchServer: every case of this package's own hostile
// table (beyond the shared vectors: header as an array, crit null, cnf as a
// sequence, lone surrogates, -0, duplicate custom claims, ...) signed with a
// key the server holds, on EdDSA, ES256 and RS256: the LocalVerifier's
// reason equals the server Verify's, case by case.
func TestLiveHostileCasesMatchServer(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			keyFile := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(keyFile, []byte(k.pem), 0o600); err != nil {
				t.Fatal(err)
			}
			s := liveServer(t, "--signing-key", keyFile)
			c := s.client(t)
			jwks, err := c.JWKS(ctx10s(t))
			if err != nil {
				t.Fatal(err)
			}
			set, err := parseJWKS(jwks)
			if err != nil || len(set.keys) != 1 {
				t.Fatalf("server JWK set: %v", err)
			}
			for kid := range set.keys {
				k.kid = kid // the server's RFC 7638 thumbprint
			}
			v := startVerifier(t, c, Options{Issuer: "tessera-test"})
			cases := hostileCases(t, k, time.Now().Unix())
			for _, hc := range cases {
				_, serverErr := c.Verify(ctx10s(t), &pb.VerifyRequest{AccessToken: hc.token})
				_, localErr := v.Verify(hc.token)
				if Reason(localErr) != Reason(serverErr) || Reason(localErr) != hc.reason {
					t.Errorf("%s: local %q, server %q, table %q", hc.name, Reason(localErr), Reason(serverErr), hc.reason)
				}
			}
			t.Logf("%d cases agree with the server", len(cases))
		})
	}
}

// writeTenants writes a --tenants file giving each named tenant its own
// key (from keygen) and issuer "https://auth.example.com/t/<name>".
func writeTenants(t *testing.T, names ...string) string {
	t.Helper()
	var text strings.Builder
	for _, name := range names {
		fmt.Fprintf(&text, "[[tenant]]\nname = %q\nissuer = %q\nsigning_key = %q\n\n",
			name, "https://auth.example.com/t/"+name, keygen(t, "eddsa"))
	}
	path := filepath.Join(t.TempDir(), "tenants.toml")
	if err := os.WriteFile(path, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A LocalVerifier of one tenant fetches that tenant's keys and issuer and
// refuses every other tenant's token, as the server does (issue #28).
func TestLiveTenantVerifier(t *testing.T) {
	s := liveServer(t, "--tenants", writeTenants(t, "acme", "globex"))
	c := s.client(t)
	acme := issue(t, c, &pb.IssueRequest{Subject: "alice", Tenant: "acme"}).AccessToken
	globex := issue(t, c, &pb.IssueRequest{Subject: "bob", Tenant: "globex"}).AccessToken
	initech := issue(t, c, &pb.IssueRequest{Subject: "carol", Tenant: "initech"}).AccessToken

	v := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api", Tenant: "acme"})
	claims, err := v.Verify(acme)
	if err != nil {
		t.Fatalf("acme's token: %v", err)
	}
	if claims.Issuer != "https://auth.example.com/t/acme" || claims.Tenant != "acme" {
		t.Fatalf("claims %+v", claims)
	}
	for _, other := range []string{globex, initech} {
		if _, err := v.Verify(other); Reason(err) != ReasonTokenSignatureInvalid {
			t.Fatalf("another tenant's token in acme's verifier: %v", err)
		}
	}
	// A tenant without keys of its own: the default keys and issuer, its
	// own tokens only.
	d := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api", Tenant: "initech"})
	if claims, err := d.Verify(initech); err != nil || claims.Issuer != "tessera-test" {
		t.Fatalf("initech's token: %+v %v", claims, err)
	}
	if _, err := d.Verify(acme); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("acme's token in initech's verifier: %v", err)
	}
	// An unscoped verifier knows only the default keys.
	u := startVerifier(t, c, Options{Issuer: "tessera-test", Audience: "api"})
	if _, err := u.Verify(initech); err != nil {
		t.Fatalf("default-key token: %v", err)
	}
	if _, err := u.Verify(acme); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("acme's token without a tenant: %v", err)
	}
}
