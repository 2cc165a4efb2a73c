package tessera

// Unit tests of the token checks, without a server: keys made here, tokens
// signed here, the hostile cases of tessera-test-support (hostile_cases.rs)
// and the core's tokens.rs tests, plus the JSON strictness they rely on.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

type testKey struct {
	pem  string // PKCS#8 private key, for a server to sign with
	kid  string
	alg  string
	sign func(msg []byte) []byte
	jwk  map[string]any
}

func newTestKey(t testing.TB, alg string) *testKey {
	t.Helper()
	k := &testKey{alg: alg}
	switch alg {
	case "EdDSA":
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		k.pem = pkcs8PEM(priv)
		k.sign = func(m []byte) []byte { return ed25519.Sign(priv, m) }
		k.jwk = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64Encode(pub)}
	case "ES256":
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k.pem = pkcs8PEM(priv)
		k.sign = func(m []byte) []byte {
			h := sha256.Sum256(m)
			r, s, _ := ecdsa.Sign(rand.Reader, priv, h[:])
			out := make([]byte, 64)
			r.FillBytes(out[:32])
			s.FillBytes(out[32:])
			return out
		}
		k.jwk = map[string]any{"kty": "EC", "crv": "P-256", "x": b64Encode(priv.X.FillBytes(make([]byte, 32))), "y": b64Encode(priv.Y.FillBytes(make([]byte, 32)))}
	case "RS256":
		priv, _ := rsa.GenerateKey(rand.Reader, 2048)
		k.pem = pkcs8PEM(priv)
		k.sign = func(m []byte) []byte {
			h := sha256.Sum256(m)
			s, _ := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
			return s
		}
		k.jwk = map[string]any{"kty": "RSA", "n": b64Encode(priv.N.Bytes()), "e": b64Encode(big.NewInt(int64(priv.E)).Bytes())}
	}
	k.kid = fmt.Sprintf("%s-%d", alg, time.Now().UnixNano())
	k.jwk["kid"], k.jwk["alg"], k.jwk["use"] = k.kid, alg, "sig"
	return k
}

func pkcs8PEM(key any) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func jwksOf(keys ...*testKey) string {
	var list []any
	for _, k := range keys {
		list = append(list, k.jwk)
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return string(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// signRaw signs header.payload (raw JSON texts) with k.
func (k *testKey) signRaw(header, payload string) string {
	msg := b64Encode([]byte(header)) + "." + b64Encode([]byte(payload))
	return msg + "." + b64Encode(k.sign([]byte(msg)))
}

func (k *testKey) header() map[string]any {
	return map[string]any{"alg": k.alg, "typ": "at+jwt", "kid": k.kid}
}

func testPayload(n int64) map[string]any {
	return map[string]any{
		"iss": "tessera-test", "sub": "mallory", "aud": []string{"api"}, "exp": n + 600, "nbf": n - 10,
		"iat": n - 10, "jti": "hostile-jti", "sid": "hostile-sid", "tid": "acme", "scope": "admin",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func without(m map[string]any, key string) map[string]any {
	out := with(m)
	delete(out, key)
	return out
}

type hostileCase struct {
	name, token, reason string
}

func hostileCases(t testing.TB, k *testKey, now int64) []hostileCase {
	good := k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now)))
	parts := strings.Split(good, ".")
	attacker := newTestKey(t, "EdDSA")
	var cs []hostileCase
	add := func(name, token, reason string) { cs = append(cs, hostileCase{name, token, reason}) }
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		h := b64Encode([]byte(mustJSON(with(k.header(), "alg", none))))
		add("alg none, no signature", h+"."+parts[1]+".", ReasonTokenSignatureInvalid)
		add("alg none, with signature", h+"."+parts[1]+"."+parts[2], ReasonTokenSignatureInvalid)
	}
	for _, secret := range []string{jwksOf(k), mustJSON(k.jwk)} {
		msg := b64Encode([]byte(mustJSON(with(k.header(), "alg", "HS256")))) + "." + parts[1]
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(msg))
		add("HS256 with the public key as secret", msg+"."+b64Encode(mac.Sum(nil)), ReasonTokenSignatureInvalid)
	}
	for _, kid := range []string{"unknown-kid", "../../../../dev/null", "' OR '1'='1' --", "", "kid\x00null"} {
		add("unknown or injected kid", k.signRaw(mustJSON(with(k.header(), "kid", kid)), mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
	}
	add("no kid", k.signRaw(mustJSON(without(k.header(), "kid")), mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
	add("kid not a string", k.signRaw(mustJSON(with(k.header(), "kid", 5)), mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
	for _, fv := range []struct {
		field string
		value any
	}{{"jku", "http://127.0.0.1:1/jwks"}, {"x5u", "http://127.0.0.1:1/x5u"}, {"jwk", attacker.jwk}, {"x5c", []string{"MIIBszCCAVmgAwIBAgIU"}}} {
		add("key from the header (attacker kid)", attacker.signRaw(mustJSON(with(attacker.header(), fv.field, fv.value)), mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
		add("key from the header (server kid)", attacker.signRaw(mustJSON(with(k.header(), fv.field, fv.value)), mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
	}
	add("unknown crit", k.signRaw(mustJSON(with(k.header(), "crit", []string{"exp"})), mustJSON(testPayload(now))), ReasonTokenMalformed)
	add("b64 false", k.signRaw(mustJSON(with(k.header(), "b64", false)), mustJSON(testPayload(now))), ReasonTokenMalformed)
	add("typ JWT", k.signRaw(mustJSON(with(k.header(), "typ", "JWT")), mustJSON(testPayload(now))), ReasonTokenMalformed)
	add("no typ", k.signRaw(mustJSON(without(k.header(), "typ")), mustJSON(testPayload(now))), ReasonTokenMalformed)
	add("typ AT+JWT", k.signRaw(mustJSON(with(k.header(), "typ", "AT+JWT")), mustJSON(testPayload(now))), "")
	add("typ application/at+jwt", k.signRaw(mustJSON(with(k.header(), "typ", "application/at+jwt")), mustJSON(testPayload(now))), "")
	swapped := b64Encode([]byte(mustJSON(with(testPayload(now), "sub", "admin"))))
	add("payload swapped", parts[0]+"."+swapped+"."+parts[2], ReasonTokenSignatureInvalid)
	add("signature stripped", parts[0]+"."+parts[1]+".", ReasonTokenSignatureInvalid)
	add("truncated signature", good[:len(good)-10], ReasonTokenSignatureInvalid)
	add("two parts", parts[0]+"."+parts[1], ReasonTokenMalformed)
	add("four parts", good+"."+parts[2], ReasonTokenMalformed)
	add("non-base64url", strings.Replace(parts[0]+"."+strings.ReplaceAll(parts[1], "A", "+")+"."+parts[2], "e", "/", 1), ReasonTokenMalformed)
	add("padded base64", parts[0]+"==."+parts[1]+"."+parts[2], ReasonTokenMalformed)
	add("newline in base64", parts[0][:4]+"\n"+parts[0][4:]+"."+parts[1]+"."+parts[2], ReasonTokenMalformed)
	add("header not JSON", b64Encode([]byte("{not json"))+"."+parts[1]+"."+parts[2], ReasonTokenMalformed)
	dup := strings.Replace(mustJSON(testPayload(now)), "{", `{"sub":"admin",`, 1)
	add("duplicate JSON keys", k.signRaw(mustJSON(k.header()), dup), ReasonTokenMalformed)
	dupHeader := strings.Replace(mustJSON(k.header()), "{", `{"kid":"other",`, 1)
	add("duplicate header keys", k.signRaw(dupHeader, mustJSON(testPayload(now))), ReasonTokenMalformed)
	dupCustom := strings.Replace(mustJSON(testPayload(now)), "{", `{"x":1,"x":2,`, 1)
	add("duplicate custom claim (last wins, as serde_json's Map)", k.signRaw(mustJSON(k.header()), dupCustom), "")
	for _, c := range []struct {
		field  string
		value  any
		raw    string
		reason string
	}{
		{"exp", "9999999999", "", ReasonTokenMalformed},
		{"exp", nil, fmt.Sprintf("%d.5", now+600), ReasonTokenMalformed},
		{"exp", -1, "", ReasonTokenExpired},
		{"exp", nil, "18446744073709551615", ReasonTokenMalformed},
		{"exp", nil, "1e300", ReasonTokenMalformed},
		{"exp", nil, fmt.Sprintf("%d.0", now+600), ReasonTokenMalformed},
		{"exp", nil, "1e400", ReasonTokenMalformed},
		{"nbf", "0", "", ReasonTokenMalformed},
		{"nbf", 1.5, "", ReasonTokenMalformed},
		{"nbf", nil, "-0", ReasonTokenMalformed},
		{"nbf", now + 86400, "", ReasonTokenNotYetValid},
		{"nbf", int64(9007199254740993), "", ReasonTokenMalformed},
		{"iat", now + 86400, "", ReasonTokenNotYetValid},
		{"aud", 5, "", ReasonTokenMalformed},
		{"aud", "api", "", ""},
		{"aud", []any{"api", 5}, "", ReasonTokenMalformed},
		{"iss", 7, "", ReasonTokenMalformed},
		{"iss", "https://evil.example", "", ReasonIssuerMismatch},
		{"sub", nil, "null", ReasonTokenMalformed},
		{"sub", "", "", ReasonTokenMalformed},
		{"jti", "", "", ReasonTokenMalformed},
		{"roles", "admin", "", ReasonTokenMalformed},
		{"tid", nil, "null", ReasonTokenMalformed},
		{"cnf", 5, "", ReasonTokenMalformed},
		{"cnf", nil, "null", ""},
	} {
		p := testPayload(now)
		text := mustJSON(p)
		if c.raw != "" {
			p[c.field] = "RAW"
			text = strings.Replace(mustJSON(p), `"RAW"`, c.raw, 1)
		} else {
			p[c.field] = c.value
			text = mustJSON(p)
		}
		add(fmt.Sprintf("claim %s = %v%s", c.field, c.value, c.raw), k.signRaw(mustJSON(k.header()), text), c.reason)
	}
	for _, field := range []string{"exp", "iss", "sub", "jti", "sid", "nbf", "iat"} {
		add(field+" missing", k.signRaw(mustJSON(k.header()), mustJSON(without(testPayload(now), field))), ReasonTokenMalformed)
	}
	add("expired beyond the leeway", k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "exp", now-31))), ReasonTokenExpired)
	add("expired within the leeway", k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "exp", now-25))), "")
	add("nbf within the leeway", k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "nbf", now+30))), "")
	add("payload not an object", k.signRaw(mustJSON(k.header()), `["tessera-test"]`), ReasonTokenMalformed)
	add("trailing garbage in payload", k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now))+"x"), ReasonTokenMalformed)
	add("lone surrogate", k.signRaw(mustJSON(k.header()), strings.Replace(mustJSON(testPayload(now)), `"mallory"`, `"mal\ud800"`, 1)), ReasonTokenMalformed)
	add("crit null is no crit", k.signRaw(mustJSON(with(k.header(), "crit", nil)), mustJSON(testPayload(now))), "")
	add("header cty of the wrong type", k.signRaw(mustJSON(with(k.header(), "cty", 5)), mustJSON(testPayload(now))), ReasonTokenMalformed)
	add("header as an array, unknown kid", k.signRaw(`["`+k.alg+`","nope","at+jwt"]`, mustJSON(testPayload(now))), ReasonTokenSignatureInvalid)
	add("header as an array, good kid", k.signRaw(`["`+k.alg+`","`+k.kid+`","at+jwt"]`, mustJSON(testPayload(now))), ReasonTokenMalformed)
	payloadText := mustJSON(testPayload(now))
	rawCase := func(name, header, payload, reason string) { add(name, k.signRaw(header, payload), reason) }
	rawCase("cnf as a sequence, no thumbprint", mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", []any{nil, "thumb"})), ReasonTokenBindingMismatch)
	rawCase("cnf as a sequence too long", mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", []any{nil, nil, nil, nil})), ReasonTokenMalformed)
	rawCase("cnf with an unknown member", mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", map[string]any{"other": 5})), "")
	rawCase("cnf jkt null", mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", map[string]any{"jkt": nil})), "")
	for _, jwk := range []struct {
		json, reason string
	}{
		{`{}`, ""}, {`{"kty":"EC"}`, ""}, {`{"kty":"RSA","n":5}`, ""}, {`null`, ""},
		{`{"kid":5}`, ReasonTokenMalformed}, {`{"use":5}`, ReasonTokenMalformed}, {`{"alg":5}`, ReasonTokenMalformed},
		{`{"alg":"XX"}`, ""}, {`{"key_ops":["sign"]}`, ""}, {`{"key_ops":"sign"}`, ReasonTokenMalformed},
		{`{"x5c":[1]}`, ReasonTokenMalformed}, {`{"kid":"a","kid":"b"}`, ReasonTokenMalformed},
		{`"key"`, ReasonTokenMalformed}, {`[]`, ReasonTokenMalformed},
	} {
		h := strings.Replace(mustJSON(k.header()), "{", `{"jwk":`+jwk.json+`,`, 1)
		rawCase("header jwk "+jwk.json, h, payloadText, jwk.reason)
	}
	rawCase("header x5c of numbers", mustJSON(with(k.header(), "x5c", []int{1})), payloadText, ReasonTokenMalformed)
	rawCase("header unknown member twice", strings.Replace(mustJSON(k.header()), "{", `{"zz":1,"zz":2,`, 1), payloadText, "")
	rawCase("header alg null", mustJSON(with(k.header(), "alg", nil)), payloadText, ReasonTokenSignatureInvalid)
	rawCase("header alg missing", mustJSON(without(k.header(), "alg")), payloadText, ReasonTokenMalformed)
	rawCase("header typ a number", mustJSON(with(k.header(), "typ", 1)), payloadText, ReasonTokenMalformed)
	rawCase("header as a six-element array", `["`+k.alg+`","`+k.kid+`","at+jwt",null,null,null]`, payloadText, ReasonTokenMalformed)
	rawCase("header typ with a Kelvin sign", mustJSON(with(k.header(), "typ", "at+jw\u212a")), payloadText, ReasonTokenMalformed)
	rawCase("custom claim nested 200 deep", mustJSON(k.header()), strings.Replace(payloadText, "{", `{"deep":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+",", 1), ReasonTokenMalformed)
	rawCase("custom claim 1e400", mustJSON(k.header()), strings.Replace(payloadText, "{", `{"big":1e400,`, 1), ReasonTokenMalformed)
	rawCase("custom claim huge integer", mustJSON(k.header()), strings.Replace(payloadText, "{", `{"big":123456789012345678901234567890,`, 1), "")
	rawCase("exp 2^53", mustJSON(k.header()), mustJSON(with(testPayload(now), "exp", int64(1)<<53)), "")
	rawCase("nbf -2^53", mustJSON(k.header()), mustJSON(with(testPayload(now), "nbf", -(int64(1)<<53))), "")
	rawCase("iat -2^53-1", mustJSON(k.header()), mustJSON(with(testPayload(now), "iat", -(int64(1)<<53)-1)), ReasonTokenMalformed)
	rawCase("payload with a BOM", mustJSON(k.header()), "\ufeff"+payloadText, ReasonTokenMalformed)
	rawCase("payload with trailing whitespace", mustJSON(k.header()), payloadText+" \n", "")
	rawCase("escaped claim name", mustJSON(k.header()), strings.Replace(payloadText, `"sub"`, `"s\u0075b"`, 1), "")
	rawCase("escaped duplicate claim name", mustJSON(k.header()), strings.Replace(payloadText, "{", `{"s\u0075b":"admin",`, 1), ReasonTokenMalformed)
	rawCase("roles null", mustJSON(k.header()), mustJSON(with(testPayload(now), "roles", nil)), ReasonTokenMalformed)
	rawCase("aud null", mustJSON(k.header()), mustJSON(with(testPayload(now), "aud", nil)), ReasonTokenMalformed)
	rawCase("aud empty list", mustJSON(k.header()), mustJSON(with(testPayload(now), "aud", []string{})), "")
	add("too long", strings.Repeat("a", MaxTokenBytes+1), ReasonFieldInvalid)
	add("empty", "", ReasonFieldInvalid)
	return cs
}

// offlineVerifier is a LocalVerifier on a fixed JWK set, in sync, no server.
func offlineVerifier(t testing.TB, jwks string, opts Options) *LocalVerifier {
	t.Helper()
	keys, err := parseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Issuer == "" {
		opts.Issuer = "tessera-test"
	}
	leeway := int64(30)
	if opts.Leeway < 0 {
		leeway = 0
	} else if opts.Leeway > 0 {
		leeway = int64(opts.Leeway / time.Second)
	}
	v := &LocalVerifier{opts: opts, leewayS: leeway, feed: newRevocationCache(), nowMs: unixNowMs,
		cache: newVerifiedCache(DefaultCacheEntries, DefaultCacheBytes), done: make(chan struct{}),
		cancel: func() {}, lastFetch: time.Now(), client: nil}
	if opts.MinRefetch == 0 {
		v.opts.MinRefetch = time.Hour // never refetch offline
	}
	close(v.done)
	v.keys.Store(keys)
	v.feed.inSync.Store(true)
	return v
}

func TestHostileCasesEveryAlgorithm(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			v := offlineVerifier(t, jwksOf(k), Options{})
			cases := hostileCases(t, k, time.Now().Unix())
			for _, cached := range []bool{false, true} { // the second pass hits the cache
				for _, c := range cases {
					_, err := v.Verify(c.token)
					if got := Reason(err); got != c.reason {
						t.Errorf("%s (cached pass %v): got %q, want %q", c.name, cached, got, c.reason)
					}
				}
			}
			if st := v.CacheStats(); st.Hits == 0 {
				t.Errorf("no cache hits: %+v", st)
			}
		})
	}
}

func TestAlgorithmPinnedByKid(t *testing.T) {
	ed, es := newTestKey(t, "EdDSA"), newTestKey(t, "ES256")
	v := offlineVerifier(t, jwksOf(ed, es), Options{})
	now := time.Now().Unix()
	// ES256 key's kid, EdDSA header and signature: refused.
	tok := ed.signRaw(mustJSON(with(ed.header(), "kid", es.kid)), mustJSON(testPayload(now)))
	if _, err := v.Verify(tok); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("alg of another key: %v", err)
	}
	tok = ed.signRaw(mustJSON(with(ed.header(), "kid", es.kid, "alg", "ES256")), mustJSON(testPayload(now)))
	if _, err := v.Verify(tok); Reason(err) != ReasonTokenSignatureInvalid {
		t.Fatalf("signature by another key: %v", err)
	}
	for _, k := range []*testKey{ed, es} {
		if _, err := v.Verify(k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now)))); err != nil {
			t.Fatalf("%s: %v", k.alg, err)
		}
	}
}

func TestClaimsAreRead(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{Audience: "api"})
	now := time.Now().Unix()
	p := with(testPayload(now), "roles", []string{"admin", "ops"}, "scope", " read  write ", "plan", "gold",
		"n", 3, "cnf", map[string]any{"dfp#S256": FingerprintHash("dev")})
	c, err := v.VerifyContext(ctx10s(t), k.signRaw(mustJSON(k.header()), mustJSON(p)), VerifyOptions{Fingerprint: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "mallory" || c.Tenant != "acme" || c.SessionID != "hostile-sid" || c.TokenID != "hostile-jti" ||
		strings.Join(c.Roles, ",") != "admin,ops" || strings.Join(c.Scopes, ",") != "read,write" ||
		c.ExpiresAt.Unix() != now+600 || c.Issuer != "tessera-test" || c.Custom["plan"] != "gold" || c.Custom["n"] != int64(3) {
		t.Fatalf("claims %+v", c)
	}
	// Callers get their own copy: changing it does not change the cache.
	c.Roles[0], c.Custom["plan"] = "root", "free"
	again, err := v.VerifyContext(ctx10s(t), k.signRaw(mustJSON(k.header()), mustJSON(p)), VerifyOptions{Fingerprint: "dev"})
	if err != nil || again.Roles[0] != "admin" || again.Custom["plan"] != "gold" || v.CacheStats().Hits == 0 {
		t.Fatalf("cached claims changed by a caller: %+v %v", again, err)
	}
	if _, err := v.Verify(k.signRaw(mustJSON(k.header()), mustJSON(p))); Reason(err) != ReasonFingerprintMismatch {
		t.Fatalf("without the fingerprint: %v", err)
	}
	// Audience: the verifier's, or the call's.
	if _, err := v.VerifyContext(ctx10s(t), k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now))), VerifyOptions{Audience: "billing"}); Reason(err) != ReasonAudienceMismatch {
		t.Fatalf("audience: %v", err)
	}
	// Scopes, after revocation.
	if _, err := v.VerifyContext(ctx10s(t), k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now))), VerifyOptions{RequiredScopes: []string{"root"}}); Reason(err) != ReasonScopeMissing {
		t.Fatalf("scope: %v", err)
	}
	// DPoP-bound: always refused locally.
	jkt := k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", map[string]any{"jkt": "x"})))
	if _, err := v.Verify(jkt); Reason(err) != ReasonTokenBindingMismatch {
		t.Fatalf("jkt: %v", err)
	}
	// cnf as a sequence, as serde reads a struct: [dfp, x5t, jkt].
	seq := k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "cnf", []any{nil, "thumb"})))
	if _, err := v.Verify(seq); Reason(err) != ReasonTokenBindingMismatch {
		t.Fatalf("cnf sequence: %v", err)
	}
	if _, err := v.VerifyContext(ctx10s(t), seq, VerifyOptions{CertThumbprint: "thumb"}); err != nil {
		t.Fatalf("cnf sequence with thumbprint: %v", err)
	}
}

// The act chain of an exchanged token is read as the core reads its
// Actor; any other shape is malformed (the server's answer too: the
// differential suites of Node and Python ask it).
func TestActorChainsAreRead(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{Audience: "api"})
	now := time.Now().Unix()
	verify := func(act any) (*Claims, error) {
		return v.Verify(k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "act", act))))
	}
	c, err := verify(map[string]any{"sub": "b", "x": 1, "act": map[string]any{"sub": "a", "act": nil}})
	if err != nil || strings.Join(c.Actors, ",") != "b,a" {
		t.Fatalf("chain: %+v %v", c, err)
	}
	if _, ok := c.Custom["act"]; ok {
		t.Fatalf("act is no custom claim: %+v", c.Custom)
	}
	c, err = verify(nil)
	if err != nil || c.Actors != nil {
		t.Fatalf("act null: %+v %v", c, err)
	}
	// serde reads a struct from a sequence too: [sub] or [sub, act].
	c, err = verify([]any{"b", []any{"a", nil}})
	if err != nil || strings.Join(c.Actors, ",") != "b,a" {
		t.Fatalf("chain as sequences: %+v %v", c, err)
	}
	for _, bad := range []any{5, "b", []any{}, []any{5}, []any{"b", nil, nil}, map[string]any{}, map[string]any{"sub": 5},
		map[string]any{"sub": "b", "act": 5}, map[string]any{"sub": "b", "act": map[string]any{}}} {
		if _, err := verify(bad); Reason(err) != ReasonTokenMalformed {
			t.Fatalf("act %v: %v", bad, err)
		}
	}
	dup := k.signRaw(mustJSON(k.header()), strings.Replace(mustJSON(testPayload(now)), "{", `{"act":{"sub":"a","sub":"b"},`, 1))
	if _, err := v.Verify(dup); Reason(err) != ReasonTokenMalformed {
		t.Fatalf("duplicate sub in act: %v", err)
	}
}

func TestRevocationAndSync(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{})
	now := time.Now().Unix()
	tok := func(jti, sid, sub string, iat int64) string {
		return k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "jti", jti, "sid", sid, "sub", sub, "iat", iat)))
	}
	far := (now + 3600) * 1000
	v.feed.apply(revocationEvent{kind: kindToken, tokenID: "j1", expiresAtMs: far})
	v.feed.apply(revocationEvent{kind: kindSession, sessionID: "s2", expiresAtMs: far})
	v.feed.apply(revocationEvent{kind: kindSubject, tenant: "acme", subject: "carol", issuedBeforeMs: now*1000 - 4500, expiresAtMs: far})
	v.feed.apply(revocationEvent{kind: kindToken, tokenID: "old", expiresAtMs: now*1000 - 1})
	// A subject event with the server's key and no raw subject; the key is
	// the server's, byte for byte (crates/tessera-core revocation.rs has
	// the same case).
	if k := subjectKey("acme", "dave"); k != "d_0dg3l8kfzk32ilysEoUq" {
		t.Fatalf("subjectKey: %q", k)
	}
	v.feed.apply(revocationEvent{kind: kindSubject, tenant: "acme", subjectKey: subjectKey("acme", "dave"), issuedBeforeMs: now*1000 - 4500, expiresAtMs: far})
	for _, c := range []struct {
		token, reason string
	}{
		{tok("j1", "s1", "bob", now), ReasonTokenRevoked},
		{tok("j2", "s2", "bob", now), ReasonTokenRevoked},
		{tok("j3", "s3", "carol", now-6), ReasonTokenRevoked},
		{tok("j4", "s4", "carol", now-5), ReasonTokenRevoked}, // the cut-off's own second
		{tok("j5", "s5", "carol", now-4), ""},
		{tok("j6", "s6", "bob", now-100), ""},
		{tok("old", "s7", "bob", now), ""}, // entry past its expiry
		{tok("j8", "s8", "dave", now-6), ReasonTokenRevoked},
		{tok("j9", "s9", "dave", now-4), ""},
	} {
		if _, err := v.Verify(c.token); Reason(err) != c.reason {
			t.Errorf("got %v, want %q", err, c.reason)
		}
	}
	v.feed.expire(now * 1000)
	if n := v.feed.len(); n != 4 {
		t.Fatalf("after expire: %d entries", n)
	}
	v.feed.inSync.Store(false)
	if _, err := v.Verify(tok("j5", "s5", "carol", now-4)); Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("out of sync: %v", err)
	}
	// A bad token is still refused for what it is while out of sync.
	if _, err := v.Verify("a.b"); Reason(err) != ReasonTokenMalformed {
		t.Fatalf("malformed out of sync: %v", err)
	}
}

func TestJSONStrictness(t *testing.T) {
	good := []string{`{}`, ` {"a":[1,-2,3.5e-3,true,false,null,"x\u00e9\ud83d\ude00"]} `, `{"a":1,"a":2}`, `0`, `-0.0`, `1E+2`, `"\/"`}
	bad := []string{``, `{`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `+1`, `1e`, `NaN`, `{"a" 1}`, `{a:1}`, `"\x"`, `"\ud800"`, `"\udc00"`,
		`"\ud800\u0041"`, "\"\x01\"", "\"\xff\"", `1e400`, `{} x`, `tru`, `[1 2]`, `"abc`}
	for _, s := range good {
		if _, err := parseJSON([]byte(s)); err != nil {
			t.Errorf("refused %q", s)
		}
	}
	for _, s := range bad {
		if _, err := parseJSON([]byte(s)); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	deep := strings.Repeat("[", 127) + strings.Repeat("]", 127)
	if _, err := parseJSON([]byte(deep)); err != nil {
		t.Errorf("127 levels refused")
	}
	deeper := strings.Repeat("[", 128) + strings.Repeat("]", 128)
	if _, err := parseJSON([]byte(deeper)); err == nil {
		t.Errorf("128 levels accepted (serde_json's limit)")
	}
	for s, want := range map[string]bool{`5`: true, `-7`: true, `-0`: false, `5.0`: false, `5e0`: false, `9223372036854775807`: true, `9223372036854775808`: false} {
		v, _ := parseJSON([]byte(s))
		if _, ok := v.integer(); ok != want {
			t.Errorf("integer(%s) = %v", s, ok)
		}
	}
}

func TestJWKSParsing(t *testing.T) {
	ed, es, rs := newTestKey(t, "EdDSA"), newTestKey(t, "ES256"), newTestKey(t, "RS256")
	set, err := parseJWKS(jwksOf(ed, es, rs))
	if err != nil || len(set.keys) != 3 {
		t.Fatalf("%v %d", err, len(set.keys))
	}
	// Unsupported or kid-less keys are skipped; bad material refuses the set.
	set, err = parseJWKS(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"h"},{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":"AAAA"}]}`)
	if err != nil || len(set.keys) != 0 {
		t.Fatalf("skipping: %v %d", err, len(set.keys))
	}
	// Material of the wrong size, off the curve or too weak is kept (as
	// jsonwebtoken keeps it) but never verifies; bad base64 refuses the set.
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, jwk := range []string{
		`{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k","x":"AAAA"}`,
		`{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k","x":"` + b64Encode(make([]byte, 32)) + `","y":"` + b64Encode(make([]byte, 32)) + `"}`,
		`{"kty":"RSA","alg":"RS256","kid":"k","n":"` + b64Encode(weak.N.Bytes()) + `","e":"AQAB"}`,
	} {
		set, err := parseJWKS(`{"keys":[` + jwk + `]}`)
		if err != nil || set.keys["k"] == nil || set.keys["k"].verify([]byte("m"), make([]byte, 64)) {
			t.Fatalf("%s: %v", jwk, err)
		}
	}
	if _, err := parseJWKS(`{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k","x":"A+A="}]}`); err == nil {
		t.Fatal("bad base64 accepted")
	}
	for _, bad := range []string{`nope`, `{}`, `{"keys":5}`} {
		if _, err := parseJWKS(bad); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
	// A mismatched kty/crv for the alg is skipped, not trusted.
	mixed := with(ed.jwk, "alg", "ES256")
	set, _ = parseJWKS(mustJSON(map[string]any{"keys": []any{mixed}}))
	if len(set.keys) != 0 {
		t.Fatal("EdDSA key accepted as ES256")
	}
}

func TestReasonFromGRPCStatus(t *testing.T) {
	e := refuse(ReasonTokenRevoked)
	st := e.GRPCStatus()
	if st.Code() != 16 || reasonOfStatus(st) != ReasonTokenRevoked {
		t.Fatalf("%v %q", st.Code(), reasonOfStatus(st))
	}
	err := fromRPC(st.Err())
	var te *TokenError
	if !errors.As(err, &te) || te.Reason != ReasonTokenRevoked || Reason(err) != ReasonTokenRevoked {
		t.Fatalf("%v", err)
	}
	if Reason(fmt.Errorf("plain")) != "" {
		t.Fatal("reason of a plain error")
	}
}
