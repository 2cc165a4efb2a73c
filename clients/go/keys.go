package tessera

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"sync/atomic"
)

// One verifying key: exactly one algorithm, the one the JWK set names.
type publicKey struct {
	kid string
	alg string // "EdDSA", "ES256" or "RS256"
	ed  ed25519.PublicKey
	ec  *ecdsa.PublicKey
	rsa *rsa.PublicKey
}

// keySet is the JWK set in force. Each set built gets its own generation,
// so the verified-token cache trusts only entries verified by the set in force.
type keySet struct {
	keys       map[string]*publicKey
	generation uint64
	// tenant and issuer: the set is one tenant's (Options.Tenant), so
	// its keys vouch only for tokens with this tid and this iss.
	tenant string
	issuer string
}

var keyGenerations uint64

var errJWKS = errors.New("tessera: invalid JWK set")

// parseJWKS reads an RFC 7517 JWK set as the Rust core's PublicKeys does:
// keys without a string kid and alg, or of an unsupported alg/kty/crv, are
// skipped; a supported key with bad material refuses the whole set.
func parseJWKS(text string) (*keySet, error) {
	root, err := parseJSON([]byte(text))
	if err != nil || root.kind != jsonObject {
		return nil, errJWKS
	}
	var list *jsonValue
	for i := range root.obj {
		if root.obj[i].key == "keys" {
			list = &root.obj[i].value // serde_json::Value: the last one wins
		}
	}
	if list == nil || list.kind != jsonArray {
		return nil, errJWKS
	}
	set := &keySet{keys: map[string]*publicKey{}, generation: atomic.AddUint64(&keyGenerations, 1)}
	for _, jwk := range list.arr {
		str := func(name string) (string, bool) {
			if jwk.kind != jsonObject {
				return "", false
			}
			val, found := "", false
			for _, m := range jwk.obj {
				if m.key == name {
					val, found = m.value.s, m.value.kind == jsonString
				}
			}
			return val, found
		}
		kid, ok1 := str("kid")
		alg, ok2 := str("alg")
		if !ok1 || !ok2 {
			continue
		}
		kty, _ := str("kty")
		crv, _ := str("crv")
		key := &publicKey{kid: kid, alg: alg}
		// As jsonwebtoken's DecodingKey::from_*_components: bad base64
		// refuses the whole set; material of the wrong size or off the curve
		// is kept but never verifies (TOKEN_SIGNATURE_INVALID).
		switch {
		case alg == "EdDSA" && kty == "OKP" && crv == "Ed25519":
			x, err := b64Member(str, "x")
			if err != nil {
				return nil, errJWKS
			}
			if len(x) == ed25519.PublicKeySize {
				key.ed = ed25519.PublicKey(x)
			}
		case alg == "ES256" && kty == "EC" && crv == "P-256":
			x, err1 := b64Member(str, "x")
			y, err2 := b64Member(str, "y")
			if err1 != nil || err2 != nil {
				return nil, errJWKS
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
			if len(x) == 32 && len(y) == 32 && pub.Curve.IsOnCurve(pub.X, pub.Y) {
				key.ec = pub
			}
		case alg == "RS256" && kty == "RSA":
			n, err1 := b64Member(str, "n")
			e, err2 := b64Member(str, "e")
			if err1 != nil || err2 != nil {
				return nil, errJWKS
			}
			modulus := new(big.Int).SetBytes(n)
			exp := new(big.Int).SetBytes(e)
			// aws-lc's RSA_PKCS1_2048_8192_SHA256: 2048- to 8192-bit moduli.
			if bits := modulus.BitLen(); bits >= 2048 && bits <= 8192 && exp.IsInt64() && exp.Int64() >= 3 && exp.Int64() <= 1<<31-1 {
				key.rsa = &rsa.PublicKey{N: modulus, E: int(exp.Int64())}
			}
		default:
			continue
		}
		set.keys[kid] = key
	}
	return set, nil
}

func b64Member(str func(string) (string, bool), name string) ([]byte, error) {
	s, ok := str(name)
	if !ok {
		return nil, errJWKS
	}
	return b64Decode(s)
}

// verify checks sig over message with this key's algorithm only.
func (k *publicKey) verify(message, sig []byte) bool {
	switch k.alg {
	case "EdDSA":
		return k.ed != nil && ed25519.Verify(k.ed, message, sig)
	case "ES256":
		if k.ec == nil || len(sig) != 64 {
			return false
		}
		h := sha256.Sum256(message)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, h[:], r, s)
	case "RS256":
		if k.rsa == nil || len(sig) != k.rsa.Size() {
			return false
		}
		h := sha256.Sum256(message)
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, h[:], sig) == nil
	}
	return false
}
