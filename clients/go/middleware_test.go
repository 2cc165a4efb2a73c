package tessera

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestVerifiedCacheBoundsAndKeyChanges(t *testing.T) {
	c := newVerifiedCache(4, 1<<20)
	keys := &keySet{keys: map[string]*publicKey{"k": {kid: "k"}}, generation: 7}
	c.maintain(7, 0, 30)
	v := &verified{exp: 100}
	for i := 0; i < 3; i++ {
		c.insert(fmt.Sprint("hot", i), v, "k", 7)
	}
	for i := 0; i < 3; i++ {
		if c.get(fmt.Sprint("hot", i), 7, keys) == nil {
			t.Fatalf("hot%d missing", i)
		}
	}
	// A flood of tokens seen once cycles through the one free place without
	// evicting the entries that keep being hit.
	for i := 0; i < 100; i++ {
		c.insert(fmt.Sprint("cold", i), v, "k", 7)
		if st := c.stats(); st.Entries > 4 {
			t.Fatalf("bound exceeded: %+v", st)
		}
		for j := 0; j < 3; j++ {
			c.get(fmt.Sprint("hot", j), 7, keys)
		}
	}
	for j := 0; j < 3; j++ {
		if c.get(fmt.Sprint("hot", j), 7, keys) == nil {
			t.Fatalf("hot%d evicted by a flood of one-shot tokens", j)
		}
	}
	// Bytes bound: a cache of 2 KB holds few entries.
	b := newVerifiedCache(1000, 2048)
	b.maintain(7, 0, 30)
	for i := 0; i < 50; i++ {
		b.insert(fmt.Sprint("t", i), v, "k", 7)
		if st := b.stats(); st.Bytes > 2048 {
			t.Fatalf("byte bound exceeded: %+v", st)
		}
	}
	// A new key set clears everything; an entry of an old set never answers.
	c.maintain(8, 0, 30)
	if st := c.stats(); st.Entries != 0 || st.KeyChanges != 1 {
		t.Fatalf("after key change: %+v", st)
	}
	c.insert("late", v, "k", 7) // verified by the old set: not admitted
	if c.get("late", 8, keys) != nil {
		t.Fatal("entry of an old key set answered")
	}
	// Sweep drops expired entries (exp 100 + leeway 30 < 200).
	c.insert("x", v, "k", 8)
	c.maintain(8, 200, 30)
	if st := c.stats(); st.Entries != 0 {
		t.Fatalf("after sweep: %+v", st)
	}
}

func TestCacheHitStillChecksExpiryAndRevocation(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{})
	now := time.Now().Unix()
	tok := k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "exp", now+5)))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	// Cached now. A hit at exp + leeway - 5 (a sweep runs, keeps it),
	// then one past exp + leeway: the hit re-checks the window.
	v.nowMs = func() int64 { return (now + 30) * 1000 }
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("cached, within the leeway: %v", err)
	}
	v.nowMs = func() int64 { return (now + 5 + 31) * 1000 }
	if _, err := v.Verify(tok); Reason(err) != ReasonTokenExpired {
		t.Fatalf("cached but expired: %v", err)
	}
	if st := v.CacheStats(); st.Hits != 2 || st.Expired != 1 || st.Entries != 0 {
		t.Fatalf("expired on a hit: %+v", st)
	}
	v.nowMs = unixNowMs
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	v.feed.apply(revocationEvent{kind: kindToken, tokenID: "hostile-jti", expiresAtMs: (now + 3600) * 1000})
	if _, err := v.Verify(tok); Reason(err) != ReasonTokenRevoked {
		t.Fatalf("cached but revoked: %v", err)
	}
	if st := v.CacheStats(); st.Hits != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHTTPMiddleware(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{Audience: "api"})
	now := time.Now().Unix()
	good := k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now)))
	expired := k.signRaw(mustJSON(k.header()), mustJSON(with(testPayload(now), "exp", now-100)))
	var seen *Claims
	h := Middleware(v, MiddlewareOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = ClaimsFromContext(r.Context())
		fmt.Fprint(w, "hello "+seen.Subject)
	}))
	scoped := Middleware(v, MiddlewareOptions{RequiredScopes: []string{"write"}}, h)
	do := func(h http.Handler, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct {
		h         http.Handler
		auth      string
		code      int
		challenge string
	}{
		{h, "", 401, `Bearer realm="tessera"`},
		{h, "Basic dXNlcjpwYXNz", 401, `Bearer realm="tessera"`},
		{h, "Bearer " + expired, 401, `Bearer realm="tessera", error="invalid_token", error_description="TOKEN_EXPIRED"`},
		{h, "Bearer not.a.token", 401, `Bearer realm="tessera", error="invalid_token", error_description="TOKEN_MALFORMED"`},
		{h, "Bearer " + strings.Repeat("a", MaxTokenBytes+1), 400, `Bearer realm="tessera", error="invalid_request"`},
		{scoped, "Bearer " + good, 403, `Bearer realm="tessera", error="insufficient_scope", scope="write"`},
		{h, "bearer " + good, 200, ""},
	} {
		w := do(c.h, c.auth)
		if w.Code != c.code || w.Header().Get("WWW-Authenticate") != c.challenge {
			t.Errorf("%.20q: %d %q, want %d %q", c.auth, w.Code, w.Header().Get("WWW-Authenticate"), c.code, c.challenge)
		}
		if strings.Contains(w.Body.String(), "eyJ") {
			t.Errorf("response echoes the token")
		}
	}
	if seen == nil || seen.Subject != "mallory" {
		t.Fatalf("claims in context: %+v", seen)
	}
	v.feed.inSync.Store(false)
	w := do(h, "Bearer "+good)
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || strings.TrimSpace(w.Body.String()) != ReasonStoreUnavailable {
		t.Fatalf("out of sync: %d %q", w.Code, w.Body.String())
	}
}

// healthWithClaims answers SERVING only when the interceptor put claims in ctx.
type healthWithClaims struct {
	healthpb.UnimplementedHealthServer
}

func (healthWithClaims) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c, ok := ClaimsFromContext(ctx)
	if !ok || c.Subject != "mallory" {
		return nil, status.Error(codes.Internal, "no claims")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (healthWithClaims) Watch(_ *healthpb.HealthCheckRequest, s healthpb.Health_WatchServer) error {
	c, ok := ClaimsFromContext(s.Context())
	if !ok || c.Subject != "mallory" {
		return status.Error(codes.Internal, "no claims")
	}
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func TestGRPCInterceptors(t *testing.T) {
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{})
	now := time.Now().Unix()
	good := k.signRaw(mustJSON(k.header()), mustJSON(testPayload(now)))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(UnaryServerInterceptor(v, InterceptorOptions{})),
		grpc.StreamInterceptor(StreamServerInterceptor(v, InterceptorOptions{})),
	)
	healthpb.RegisterHealthServer(srv, healthWithClaims{})
	go srv.Serve(lis)
	defer srv.Stop()
	_ = health.NewServer // the stock server is not used: ours checks the claims

	conn, err := grpc.Dial(lis.Addr().String(), grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	call := func(auth string) error {
		ctx := ctx10s(t)
		if auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
		}
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call("Bearer " + good); err != nil {
		t.Fatalf("unary with a good token: %v", err)
	}
	if err := call(""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unary without a token: %v", err)
	}
	if err := call("Bearer x.y.z"); status.Code(err) != codes.Unauthenticated || Reason(err) != ReasonTokenMalformed {
		t.Fatalf("unary with a bad token: %v", err)
	}
	stream := func(auth string) error {
		ctx := metadata.AppendToOutgoingContext(ctx10s(t), "authorization", auth)
		s, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	if err := stream("Bearer " + good); err != nil {
		t.Fatalf("stream with a good token: %v", err)
	}
	v.feed.inSync.Store(false)
	if err := stream("Bearer " + good); status.Code(err) != codes.Unavailable || Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("stream out of sync: %v", err)
	}
}

func TestFeedReconnectBacksOff(t *testing.T) {
	// A verifier whose server is gone: it keeps trying, with exponential
	// backoff and full jitter (100 ms doubling, capped), failing closed.
	port := freePort(t) // nothing listens here
	c, err := NewClient(fmt.Sprintf("127.0.0.1:%d", port), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := newTestKey(t, "EdDSA")
	v := offlineVerifier(t, jwksOf(k), Options{})
	v.client, v.opts.MaxBackoff = c, 3*time.Second
	v.feed.inSync.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	v.done = make(chan struct{})
	v.cancel = cancel
	go v.follow(ctx)
	time.Sleep(2 * time.Second)
	v.Close()
	n := v.attempts.Load()
	t.Logf("%d attempts in 2 s", n)
	if n < 2 || n > 25 {
		t.Fatalf("%d reconnect attempts in 2 s (want a handful: 100 ms doubling with jitter)", n)
	}
	if _, err := v.Verify(k.signRaw(mustJSON(k.header()), mustJSON(testPayload(time.Now().Unix())))); Reason(err) != ReasonStoreUnavailable {
		t.Fatalf("without a feed: %v", err)
	}
}
