package tessera

// Access-token checks, step for step as the Rust core (tessera-core
// tokens.rs on jsonwebtoken 11 and serde), so that every refusal carries
// the reason code the server's Verify gives:
//
//  1. three base64url parts (no padding, no other characters);
//  2. the header as Tessera's RawHeader: `alg` required; any `crit` or
//     `b64` -> TOKEN_MALFORMED; `typ` must be at+jwt (ASCII case-insensitive,
//     or application/at+jwt) -> else TOKEN_MALFORMED; `kid` a string of a
//     key we hold, and `alg` exactly that key's -> else
//     TOKEN_SIGNATURE_INVALID;
//  3. the header as jsonwebtoken's Header (typed registered members, no
//     duplicates of them) -> else TOKEN_MALFORMED;
//  4. the signature (bad base64 -> TOKEN_MALFORMED, wrong -> SIGNATURE_INVALID);
//  5. the payload into strict claims (duplicate named claims, wrong types,
//     non-integer or out-of-range NumericDates, missing iss/sub/exp/nbf/
//     iat/jti/sid -> TOKEN_MALFORMED);
//  6. iss == issuer -> else ISSUER_MISMATCH; empty sub/jti/sid -> MALFORMED;
//  7. the validity window with leeway (EXPIRED, NOT_YET_VALID).

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"
)

// MaxTokenBytes is the longest token accepted (longer: FIELD_INVALID).
const MaxTokenBytes = 8 * 1024

const numericDateLimit = int64(1) << 53

// Confirmation is the `cnf` claim (RFC 7800): what the token is bound to.
type Confirmation struct {
	// DeviceFingerprintSHA256 is `dfp#S256`: the device fingerprint's hash.
	DeviceFingerprintSHA256 string
	// CertThumbprintSHA256 is `x5t#S256` (RFC 8705).
	CertThumbprintSHA256 string
	// JKT is the DPoP key thumbprint (RFC 9449).
	JKT string

	hasDFP, hasX5T, hasJKT bool
}

// Claims of a verified access token.
type Claims struct {
	Subject   string   // sub
	Tenant    string   // tid; "" = none
	SessionID string   // sid
	TokenID   string   // jti
	Roles     []string // roles
	Scopes    []string // scope, split on spaces
	Audience  []string // aud
	Issuer    string   // iss
	ExpiresAt time.Time
	IssuedAt  time.Time
	NotBefore time.Time
	// Custom holds the custom claims given at Issue (JSON values: string,
	// bool, nil, int64 or float64, []any, map[string]any).
	Custom map[string]any
	// Cnf is the binding, nil when the token is not bound.
	Cnf *Confirmation
	// Actors is the `act` chain of an exchanged token (RFC 8693 §4.1),
	// the current actor first; nil when the token was not exchanged.
	Actors []string
}

// HasScope reports whether the token carries scope.
func (c *Claims) HasScope(scope string) bool {
	for _, s := range c.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// clone copies the claims for a caller (the cache keeps the original):
// slices and the top level of Custom are copied; nested custom values
// (maps, slices) are shared and must be treated as read-only.
func (c *Claims) clone() *Claims {
	out := *c
	out.Roles = append([]string(nil), c.Roles...)
	out.Scopes = append([]string(nil), c.Scopes...)
	out.Audience = append([]string(nil), c.Audience...)
	if c.Actors != nil {
		out.Actors = append([]string(nil), c.Actors...)
	}
	if c.Custom != nil {
		out.Custom = make(map[string]any, len(c.Custom))
		for k, v := range c.Custom {
			out.Custom[k] = v
		}
	}
	if c.Cnf != nil {
		cnf := *c.Cnf
		out.Cnf = &cnf
	}
	return &out
}

// verified is what the cache holds: claims plus what later checks derive.
type verified struct {
	claims     Claims
	exp        int64
	nbf        int64
	iat        int64
	subjectKey string
}

var b64 = base64.RawURLEncoding.Strict()

// b64Decode is base64url without padding, canonical trailing bits, and no
// characters outside the alphabet (Go's decoder skips CR and LF).
func b64Decode(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, errJSON
		}
	}
	return b64.DecodeString(s)
}

func b64Encode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sha256B64 is base64url SHA-256, as fingerprints and thumbprints are written.
func sha256B64(data string) string {
	h := sha256.Sum256([]byte(data))
	return b64Encode(h[:])
}

// subjectKey is the key of a subject's revocation cut-off: the first 22
// characters of base64url SHA-256 of tenant NUL subject.
func subjectKey(tenant, subject string) string {
	return sha256B64(tenant + "\x00" + subject)[:22]
}

// FingerprintHash is the hash of a device fingerprint as tokens carry it.
func FingerprintHash(fingerprint string) string {
	if fingerprint == "" {
		return ""
	}
	return sha256B64("tessera-dfp\x00" + fingerprint)
}

// CertThumbprint is the RFC 8705 thumbprint of a certificate: base64url
// SHA-256 of its DER (what a certificate-bound token's cnf.x5t#S256 holds).
func CertThumbprint(der []byte) string {
	h := sha256.Sum256(der)
	return b64Encode(h[:])
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// splitToken splits into exactly three parts.
func splitToken(token string) (h, p, s string, ok bool) {
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return
	}
	j := strings.IndexByte(token[i+1:], '.')
	if j < 0 {
		return
	}
	j += i + 1
	if strings.IndexByte(token[j+1:], '.') >= 0 {
		return
	}
	return token[:i], token[i+1 : j], token[j+1:], true
}

// rawHeader is Tessera's RawHeader: alg (any JSON, required), and kid,
// typ, crit, b64 (absent or null = None).
type rawHeader struct {
	alg                 jsonValue
	kid, typ, crit, b64 *jsonValue
}

// readRawHeader follows serde's derived Deserialize: a map (duplicate
// field -> error, unknown ignored) or a sequence in field order.
func readRawHeader(v jsonValue) (rawHeader, bool) {
	var h rawHeader
	opt := func(x jsonValue) *jsonValue {
		if x.kind == jsonNull {
			return nil
		}
		c := x
		return &c
	}
	switch v.kind {
	case jsonObject:
		seen := map[string]bool{}
		hasAlg := false
		for _, m := range v.obj {
			switch m.key {
			case "alg", "kid", "typ", "crit", "b64":
				if seen[m.key] {
					return h, false
				}
				seen[m.key] = true
			}
			switch m.key {
			case "alg":
				h.alg, hasAlg = m.value, true
			case "kid":
				h.kid = opt(m.value)
			case "typ":
				h.typ = opt(m.value)
			case "crit":
				h.crit = opt(m.value)
			case "b64":
				h.b64 = opt(m.value)
			}
		}
		return h, hasAlg
	case jsonArray:
		if len(v.arr) < 1 || len(v.arr) > 5 {
			return h, false
		}
		h.alg = v.arr[0]
		fields := []**jsonValue{&h.kid, &h.typ, &h.crit, &h.b64}
		for i, x := range v.arr[1:] {
			*fields[i] = opt(x)
		}
		return h, true
	}
	return h, false
}

// jwtHeaderOK checks the header as jsonwebtoken's Header deserializes it
// (a map only; each registered member at most once and of its type).
func jwtHeaderOK(v jsonValue) bool {
	if v.kind != jsonObject {
		return false
	}
	seen := map[string]bool{}
	for _, m := range v.obj {
		switch m.key {
		case "typ", "alg", "cty", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crit", "enc", "zip", "url", "nonce":
			if seen[m.key] {
				return false
			}
			seen[m.key] = true
		default:
			continue // extras: any JSON
		}
		x := m.value
		switch m.key {
		case "alg":
			if x.kind != jsonString || !knownJWTAlg(x.s) {
				return false
			}
		case "x5c", "crit":
			if !optStringList(x) {
				return false
			}
		case "jwk":
			if x.kind != jsonNull && !jwkOK(x) {
				return false
			}
		default:
			if x.kind != jsonNull && x.kind != jsonString {
				return false
			}
		}
	}
	return seen["alg"]
}

func knownJWTAlg(a string) bool {
	switch a {
	case "HS256", "HS384", "HS512", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA":
		return true
	}
	return false
}

func optStringList(x jsonValue) bool {
	if x.kind == jsonNull {
		return true
	}
	if x.kind != jsonArray {
		return false
	}
	for _, s := range x.arr {
		if s.kind != jsonString {
			return false
		}
	}
	return true
}

// jwkOK follows jsonwebtoken's Jwk: an object whose common parameters are
// well typed (use, alg, kid, x5u, x5t, x5t#S256: strings; key_ops, x5c:
// lists of strings; null = absent), each at most once; any other member is
// accepted (its AlgorithmParameters end in a catch-all `Other` map).
func jwkOK(x jsonValue) bool {
	if x.kind != jsonObject {
		return false
	}
	seen := map[string]bool{}
	for _, m := range x.obj {
		switch m.key {
		case "use", "alg", "kid", "x5u", "x5t", "x5t#S256":
			if m.value.kind != jsonNull && m.value.kind != jsonString {
				return false
			}
		case "key_ops", "x5c":
			if !optStringList(m.value) {
				return false
			}
		default:
			continue
		}
		if seen[m.key] {
			return false
		}
		seen[m.key] = true
	}
	return true
}

// parseClaims reads the payload as the core's AccessClaims: named claims
// at most once and of their types, other members are custom claims (the
// last of equal names wins).
func parseClaims(v jsonValue) (*verified, bool) {
	if v.kind != jsonObject {
		return nil, false
	}
	out := &verified{}
	c := &out.claims
	seen := map[string]bool{}
	str := func(x jsonValue, dst *string) bool {
		if x.kind != jsonString {
			return false
		}
		*dst = x.s
		return true
	}
	date := func(x jsonValue, dst *int64) bool {
		n, ok := x.integer()
		if !ok || n < -numericDateLimit || n > numericDateLimit {
			return false
		}
		*dst = n
		return true
	}
	var scope string
	for _, m := range v.obj {
		switch m.key {
		case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tid", "roles", "scope", "cnf", "act":
			if seen[m.key] {
				return nil, false
			}
			seen[m.key] = true
		default:
			if c.Custom == nil {
				c.Custom = map[string]any{}
			}
			c.Custom[m.key] = m.value.toAny()
			continue
		}
		x := m.value
		ok := true
		switch m.key {
		case "iss":
			ok = str(x, &c.Issuer)
		case "sub":
			ok = str(x, &c.Subject)
		case "jti":
			ok = str(x, &c.TokenID)
		case "sid":
			ok = str(x, &c.SessionID)
		case "tid":
			ok = str(x, &c.Tenant)
		case "scope":
			ok = str(x, &scope)
		case "exp":
			ok = date(x, &out.exp)
		case "nbf":
			ok = date(x, &out.nbf)
		case "iat":
			ok = date(x, &out.iat)
		case "aud":
			switch x.kind {
			case jsonString:
				c.Audience = []string{x.s}
			case jsonArray:
				c.Audience, ok = stringList(x)
			default:
				ok = false
			}
		case "roles":
			c.Roles, ok = stringList(x)
		case "cnf":
			c.Cnf, ok = parseCnf(x)
		case "act":
			c.Actors, ok = parseActors(x)
		}
		if !ok {
			return nil, false
		}
	}
	for _, required := range []string{"iss", "sub", "exp", "nbf", "iat", "jti", "sid"} {
		if !seen[required] {
			return nil, false
		}
	}
	for _, s := range strings.Split(scope, " ") {
		if s != "" {
			c.Scopes = append(c.Scopes, s)
		}
	}
	c.ExpiresAt = time.Unix(out.exp, 0)
	c.IssuedAt = time.Unix(out.iat, 0)
	c.NotBefore = time.Unix(out.nbf, 0)
	return out, true
}

func stringList(x jsonValue) ([]string, bool) {
	if x.kind != jsonArray {
		return nil, false
	}
	out := make([]string, 0, len(x.arr))
	for _, s := range x.arr {
		if s.kind != jsonString {
			return nil, false
		}
		out = append(out, s.s)
	}
	return out, true
}

// parseCnf reads Confirmation: null = none; a map (named members at most
// once, string or null; others ignored) or, as serde allows for a struct,
// a sequence of up to three members in field order.
func parseCnf(x jsonValue) (*Confirmation, bool) {
	cnf := &Confirmation{}
	set := func(i int, v jsonValue) bool {
		switch v.kind {
		case jsonNull:
			return true
		case jsonString:
		default:
			return false
		}
		switch i {
		case 0:
			cnf.DeviceFingerprintSHA256, cnf.hasDFP = v.s, true
		case 1:
			cnf.CertThumbprintSHA256, cnf.hasX5T = v.s, true
		case 2:
			cnf.JKT, cnf.hasJKT = v.s, true
		}
		return true
	}
	switch x.kind {
	case jsonNull:
		return nil, true
	case jsonObject:
		seen := [3]bool{}
		for _, m := range x.obj {
			i := -1
			switch m.key {
			case "dfp#S256":
				i = 0
			case "x5t#S256":
				i = 1
			case "jkt":
				i = 2
			}
			if i < 0 {
				continue
			}
			if seen[i] {
				return nil, false
			}
			seen[i] = true
			if !set(i, m.value) {
				return nil, false
			}
		}
	case jsonArray:
		if len(x.arr) > 3 {
			return nil, false
		}
		for i, v := range x.arr {
			if !set(i, v) {
				return nil, false
			}
		}
	default:
		return nil, false
	}
	return cnf, true
}

// verifyToken checks signature and claims at now (Unix seconds): the
// core's verify_with_kid. It returns the kid that verified the token.
func verifyToken(keys *keySet, token string, now int64, issuer string, leeway int64) (*verified, string, *TokenError) {
	if len(token) > MaxTokenBytes {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	h64, p64, s64, ok := splitToken(token)
	if !ok {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	headerJSON, err := b64Decode(h64)
	if err != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	headerValue, err := parseJSON(headerJSON)
	if err != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	raw, ok := readRawHeader(headerValue)
	if !ok || raw.crit != nil || raw.b64 != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	if raw.typ == nil || raw.typ.kind != jsonString ||
		!(asciiEqualFold(raw.typ.s, "at+jwt") || asciiEqualFold(raw.typ.s, "application/at+jwt")) {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	if raw.kid == nil || raw.kid.kind != jsonString {
		return nil, "", refuse(ReasonTokenSignatureInvalid)
	}
	kid := raw.kid.s
	key := keys.keys[kid]
	if key == nil || raw.alg.kind != jsonString || raw.alg.s != key.alg {
		return nil, "", refuse(ReasonTokenSignatureInvalid)
	}
	if !jwtHeaderOK(headerValue) {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	sig, err := b64Decode(s64)
	if err != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	if !key.verify([]byte(token[:len(h64)+1+len(p64)]), sig) {
		return nil, "", refuse(ReasonTokenSignatureInvalid)
	}
	payloadJSON, err := b64Decode(p64)
	if err != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	payloadValue, err := parseJSON(payloadJSON)
	if err != nil {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	v, ok := parseClaims(payloadValue)
	if !ok {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	if keys.tenant != "" {
		// One tenant's keys vouch for its tokens only: another tid is
		// as if signed by an unknown key (the server's rule).
		if v.claims.Tenant != keys.tenant {
			return nil, "", refuse(ReasonTokenSignatureInvalid)
		}
		issuer = keys.issuer
	}
	if v.claims.Issuer != issuer {
		return nil, "", refuse(ReasonIssuerMismatch)
	}
	if v.claims.Subject == "" || v.claims.TokenID == "" || v.claims.SessionID == "" {
		return nil, "", refuse(ReasonTokenMalformed)
	}
	if e := checkWindow(v, now, leeway); e != nil {
		return nil, "", e
	}
	v.subjectKey = subjectKey(v.claims.Tenant, v.claims.Subject)
	return v, kid, nil
}

func satAdd(a, b int64) int64 {
	c := a + b
	if (c > a) == (b > 0) {
		return c
	}
	if b > 0 {
		return int64(^uint64(0) >> 1)
	}
	return -int64(^uint64(0)>>1) - 1
}

// checkWindow: exp, nbf and iat against now with leeway (run on cache hits too).
func checkWindow(v *verified, now, leeway int64) *TokenError {
	if now > satAdd(v.exp, leeway) {
		return refuse(ReasonTokenExpired)
	}
	if v.nbf > satAdd(now, leeway) || v.iat > satAdd(now, leeway) {
		return refuse(ReasonTokenNotYetValid)
	}
	return nil
}

// headerKid is the header's kid without any verification (to decide on a
// JWK set refetch), as jsonwebtoken's decode_header reads it.
func headerKid(token string) (string, bool) {
	h64, _, _, ok := splitToken(token)
	if !ok {
		return "", false
	}
	raw, err := b64Decode(h64)
	if err != nil {
		return "", false
	}
	v, err := parseJSON(raw)
	if err != nil || !jwtHeaderOK(v) {
		return "", false
	}
	kid := ""
	found := false
	for _, m := range v.obj {
		if m.key == "kid" && m.value.kind == jsonString {
			kid, found = m.value.s, true
		}
	}
	return kid, found
}

// parseActors reads `act` as serde reads the core's Actor: null (none),
// an object with a string `sub` and an optional nested `act` of the same
// shape, each at most once (other members ignored), or the same as a
// sequence `[sub]` / `[sub, act]`.
func parseActors(x jsonValue) ([]string, bool) {
	var chain []string
	for x.kind != jsonNull {
		sub, hasSub, hasAct := jsonValue{}, false, false
		next := jsonValue{kind: jsonNull}
		switch x.kind {
		case jsonObject:
			for _, m := range x.obj {
				switch m.key {
				case "sub":
					if hasSub {
						return nil, false
					}
					sub, hasSub = m.value, true
				case "act":
					if hasAct {
						return nil, false
					}
					next, hasAct = m.value, true
				}
			}
		case jsonArray:
			if len(x.arr) < 1 || len(x.arr) > 2 {
				return nil, false
			}
			sub, hasSub = x.arr[0], true
			if len(x.arr) == 2 {
				next = x.arr[1]
			}
		default:
			return nil, false
		}
		if !hasSub || sub.kind != jsonString {
			return nil, false
		}
		chain = append(chain, sub.s)
		x = next
	}
	return chain, true
}
