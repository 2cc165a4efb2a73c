package tessera

import (
	"testing"
	"time"
)

// BenchmarkLocalVerify: one hot token through LocalVerifier.Verify, with the
// verified-token cache (a hit: window, binding, revocation and scope checks
// only) and without (full parse and signature every call). Run with -cpu 1.
func BenchmarkLocalVerify(b *testing.B) {
	for _, alg := range []string{"EdDSA", "ES256"} {
		k := newTestKey(b, alg)
		token := k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(time.Now().Unix()),
			"roles", []string{"admin"}, "scope", "read write", "exp", time.Now().Unix()+3600)))
		for _, cached := range []bool{true, false} {
			name := alg + "/cache"
			opts := Options{Audience: "api"}
			if !cached {
				name = alg + "/no-cache"
			}
			b.Run(name, func(b *testing.B) {
				v := offlineVerifier(b, jwksOf(k), opts)
				if !cached {
					v.cache = nil
				}
				if _, err := v.Verify(token); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := v.Verify(token); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
