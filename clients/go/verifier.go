package tessera

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "tessera.dev/client/go/tesserapb"
)

// Options of a LocalVerifier.
type Options struct {
	// Issuer the server mints (its --issuer); default "tessera".
	Issuer string
	// Tenant: verify only this tenant's tokens ("" = any tenant of the
	// default keys). The verifier fetches the tenant's keys (GetJwks with
	// tenant: its own, else the default ones) and expects the issuer the
	// server names for them (Issuer only when it names none); another
	// tenant's token is TOKEN_SIGNATURE_INVALID.
	Tenant string
	// Audience the tokens must carry; "" = no audience check.
	Audience string
	// Leeway is the clock-skew tolerance (the server's --leeway), in whole
	// seconds; zero means the default 30 s, a negative value none.
	Leeway time.Duration
	// MinRefetch: an unknown kid refetches the JWK set at most this often
	// (default 30 s).
	MinRefetch time.Duration
	// ResumeCursor resumes the feed after a cursor saved from an earlier
	// run instead of starting from a snapshot. A cursor the server refuses
	// (CURSOR_INVALID) is dropped and the verifier resyncs from a snapshot.
	ResumeCursor string
	// CacheEntries and CacheBytes bound the verified-token cache (defaults
	// 65,536 entries and 64 MiB, the server's); a negative value turns it off.
	CacheEntries int
	CacheBytes   int64
	// JWKSMaxAge: the JWK set is refetched in the background this long
	// after the last fetch (default 5 min, the server's --jwks-max-age), so
	// a key dropped by a rotation stops verifying here too.
	JWKSMaxAge time.Duration
	// MaxBackoff caps the feed's reconnect delay (default 3 s); reconnects
	// wait a random time up to min(MaxBackoff, 100 ms * 2^attempt).
	MaxBackoff time.Duration
	// Logf receives one-line notices of feed trouble (never a token or a
	// key); nil = silent.
	Logf func(format string, args ...any)
	// OnRevocation, when set, is called on the feed's goroutine right
	// after each revocation event (snapshot or live) is applied, so Verify
	// already denies what it covers: kind "token" with the token's jti,
	// "session" with the session id, or "subject" with the subject's key
	// (the feed's subject_key). For metrics and for timing propagation;
	// the feed waits while it runs, so it must return quickly.
	OnRevocation func(kind, id string)
}

// VerifyOptions are per-call inputs of VerifyContext.
type VerifyOptions struct {
	// Audience overrides Options.Audience when not empty.
	Audience string
	// Fingerprint is the device fingerprint a device-bound token needs.
	Fingerprint string
	// CertThumbprint is the x5t#S256 of the client certificate the
	// presenter showed (CertThumbprint(der)); a certificate-bound token
	// needs it.
	CertThumbprint string
	// RequiredScopes: a missing one is SCOPE_MISSING.
	RequiredScopes []string
}

// LocalVerifier verifies access tokens in process, exactly as the server's
// Verify at default consistency: signature and algorithm by kid, type,
// issuer, validity window, audience, device and certificate binding,
// revocation (from the feed), scopes. Safe for concurrent use.
//
// A DPoP-bound token (cnf.jkt) always fails with TOKEN_BINDING_MISMATCH
// here: its proofs' replay set lives in the server's store; verify it with
// the server.
type LocalVerifier struct {
	client    *Client
	opts      Options
	leewayS   int64
	keys      atomic.Pointer[keySet]
	fetchMu   sync.Mutex
	lastFetch time.Time
	feed      *revocationCache
	cache     *verifiedCache
	cursorMu  sync.Mutex
	cursor    string
	lastEvent atomic.Int64  // revoked_at (ms) of the last applied event
	connects  atomic.Uint64 // streams opened
	attempts  atomic.Uint64 // streams tried
	resyncs   atomic.Uint64
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	nowMs     func() int64
}

func unixNowMs() int64 { return time.Now().UnixMilli() }

// NewLocalVerifier fetches the JWK set (ctx bounds that first call) and
// starts following the revocation feed in the background: a snapshot of
// every revocation in force, then live events, resuming from the last
// cursor after a break. Verify fails closed with STORE_UNAVAILABLE until
// the feed has caught up; see WaitInSync.
func NewLocalVerifier(ctx context.Context, client *Client, opts Options) (*LocalVerifier, error) {
	if opts.Issuer == "" {
		opts.Issuer = "tessera"
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = 30 * time.Second
	case opts.Leeway < 0:
		opts.Leeway = 0
	}
	if opts.MinRefetch <= 0 {
		opts.MinRefetch = 30 * time.Second
	}
	if opts.JWKSMaxAge <= 0 {
		opts.JWKSMaxAge = 5 * time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 3 * time.Second
	}
	if opts.CacheEntries == 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	keys, err := fetchKeys(ctx, client, opts)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	v := &LocalVerifier{
		client:    client,
		opts:      opts,
		leewayS:   int64(opts.Leeway / time.Second),
		feed:      newRevocationCache(),
		cache:     newVerifiedCache(opts.CacheEntries, opts.CacheBytes),
		cursor:    opts.ResumeCursor,
		lastFetch: time.Now(),
		cancel:    cancel,
		done:      make(chan struct{}),
		nowMs:     unixNowMs,
	}
	v.keys.Store(keys)
	go v.follow(runCtx)
	return v, nil
}

// Close stops following the feed (the Client stays open); Verify then
// fails closed with STORE_UNAVAILABLE.
func (v *LocalVerifier) Close() {
	v.closeOnce.Do(func() {
		v.cancel()
		<-v.done
	})
}

// InSync reports whether the revocation cache is complete (stream connected
// and caught up).
func (v *LocalVerifier) InSync() bool { return v.feed.inSync.Load() }

// WaitInSync waits until in sync, ctx ends (false) or the verifier is closed.
func (v *LocalVerifier) WaitInSync(ctx context.Context) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !v.InSync() {
		select {
		case <-ctx.Done():
			return false
		case <-v.done:
			return false
		case <-t.C:
		}
	}
	return true
}

// Cursor is the position after the last applied event (save it to resume
// with Options.ResumeCursor).
func (v *LocalVerifier) Cursor() string {
	v.cursorMu.Lock()
	defer v.cursorMu.Unlock()
	return v.cursor
}

// Lag is the age of the last applied revocation: now minus its revoked_at
// (0 before any).
func (v *LocalVerifier) Lag() time.Duration {
	at := v.lastEvent.Load()
	if at == 0 {
		return 0
	}
	d := unixNowMs() - at
	if d < 0 {
		d = 0
	}
	return time.Duration(d) * time.Millisecond
}

// Resyncs counts how often a refused cursor was dropped for a snapshot.
func (v *LocalVerifier) Resyncs() uint64 { return v.resyncs.Load() }

// CacheStats are the verified-token cache's counters (zero when it is off).
func (v *LocalVerifier) CacheStats() CacheStats {
	if v.cache == nil {
		return CacheStats{}
	}
	return v.cache.stats()
}

// Verify verifies token with the verifier's audience. Errors are
// *TokenError with the server's reason code.
func (v *LocalVerifier) Verify(token string) (*Claims, error) {
	return v.VerifyContext(context.Background(), token, VerifyOptions{})
}

// VerifyContext verifies token; ctx bounds the one JWK set refetch an
// unknown kid may cause. Errors are *TokenError with the reason the
// server's Verify gives in the same case (STORE_UNAVAILABLE when the
// revocation cache is out of sync: fail closed).
func (v *LocalVerifier) VerifyContext(ctx context.Context, token string, o VerifyOptions) (*Claims, error) {
	c, err := v.verify(ctx, token, o)
	if err != nil {
		return nil, err
	}
	return c.claims.clone(), nil
}

func (v *LocalVerifier) verify(ctx context.Context, token string, o VerifyOptions) (*verified, *TokenError) {
	if token == "" || len(token) > MaxTokenBytes {
		return nil, refuse(ReasonFieldInvalid)
	}
	nowMs := v.nowMs()
	now := floorDiv(nowMs, 1000)
	c, e := v.verifySignature(token, now)
	if e != nil && e.Reason == ReasonTokenSignatureInvalid && v.refetchFor(ctx, token) {
		c, e = v.verifySignature(token, now)
	}
	if e != nil {
		return nil, e
	}
	audience := o.Audience
	if audience == "" {
		audience = v.opts.Audience
	}
	if audience != "" && !contains(c.claims.Audience, audience) {
		return nil, refuse(ReasonAudienceMismatch)
	}
	cnf := c.claims.Cnf
	if cnf != nil && cnf.hasDFP {
		if !constantTimeEq(FingerprintHash(o.Fingerprint), cnf.DeviceFingerprintSHA256) {
			return nil, refuse(ReasonFingerprintMismatch)
		}
	}
	if cnf != nil && cnf.hasX5T && !constantTimeEq(o.CertThumbprint, cnf.CertThumbprintSHA256) {
		return nil, refuse(ReasonTokenBindingMismatch)
	}
	if cnf != nil && cnf.hasJKT {
		// DPoP-bound (RFC 9449): the proofs' replay set is in the server's
		// store, across replicas; a local verifier cannot keep it.
		return nil, refuse(ReasonTokenBindingMismatch)
	}
	switch v.feed.check(c.claims.TokenID, c.claims.SessionID, c.subjectKey, c.iat, nowMs) {
	case revoked:
		return nil, refuse(ReasonTokenRevoked)
	case unknown:
		return nil, refuse(ReasonStoreUnavailable)
	}
	for _, req := range o.RequiredScopes {
		if !c.claims.HasScope(req) {
			return nil, refuse(ReasonScopeMissing)
		}
	}
	return c, nil
}

// verifySignature is the core's TokenVerifier::verify: the cache in front
// of the full check; a hit re-checks the validity window.
func (v *LocalVerifier) verifySignature(token string, now int64) (*verified, *TokenError) {
	keys := v.keys.Load()
	if v.cache == nil {
		c, _, e := verifyToken(keys, token, now, v.opts.Issuer, v.leewayS)
		return c, e
	}
	v.cache.maintain(keys.generation, now, v.leewayS)
	if c := v.cache.get(token, keys.generation, keys); c != nil {
		if e := checkWindow(c, now, v.leewayS); e != nil {
			if e.Reason == ReasonTokenExpired {
				v.cache.removeExpired(token)
			}
			return nil, e
		}
		return c, nil
	}
	c, kid, e := verifyToken(keys, token, now, v.opts.Issuer, v.leewayS)
	if e != nil {
		return nil, e
	}
	v.cache.insert(token, c, kid, keys.generation)
	return c, nil
}

// refetchFor refetches the JWK set for a token whose kid we do not hold, at
// most every MinRefetch; true when a new set is in force.
func (v *LocalVerifier) refetchFor(ctx context.Context, token string) bool {
	kid, ok := headerKid(token)
	if !ok || v.keys.Load().keys[kid] != nil {
		return false
	}
	v.fetchMu.Lock()
	if time.Since(v.lastFetch) < v.opts.MinRefetch {
		v.fetchMu.Unlock()
		return false
	}
	v.lastFetch = time.Now()
	v.fetchMu.Unlock()
	return v.refetch(ctx)
}

// refetch fetches the JWK set and puts it in force (a new generation: the
// verified-token cache starts over).
func (v *LocalVerifier) refetch(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys, err := fetchKeys(ctx, v.client, v.opts)
	if errors.Is(err, errJWKS) {
		v.logf("tessera: refetched JWK set is invalid")
		return false
	}
	if err != nil {
		v.logf("tessera: JWK set refetch failed: %v", err)
		return false
	}
	v.keys.Store(keys)
	return true
}

// fetchKeys fetches the JWK set the verifier trusts: the default keys, or
// with opts.Tenant that tenant's, vouching only for its tid and issuer.
func fetchKeys(ctx context.Context, client *Client, opts Options) (*keySet, error) {
	resp, err := client.JWKSOf(ctx, opts.Tenant)
	if err != nil {
		return nil, err
	}
	keys, err := parseJWKS(resp.GetJwksJson())
	if err != nil {
		return nil, err
	}
	if opts.Tenant != "" {
		keys.tenant = opts.Tenant
		keys.issuer = resp.GetIssuer()
		if keys.issuer == "" {
			keys.issuer = opts.Issuer
		}
	}
	return keys, nil
}

func (v *LocalVerifier) logf(format string, args ...any) {
	if v.opts.Logf != nil {
		v.opts.Logf(format, args...)
	}
}

func toEvent(e *pb.RevocationEvent) (revocationEvent, bool) {
	ms := func(t interface {
		GetSeconds() int64
		GetNanos() int32
	}) int64 {
		return t.GetSeconds()*1000 + int64(t.GetNanos())/1_000_000
	}
	var kind int
	switch e.GetKind() {
	case pb.RevocationKind_REVOCATION_KIND_TOKEN:
		kind = kindToken
	case pb.RevocationKind_REVOCATION_KIND_SESSION:
		kind = kindSession
	case pb.RevocationKind_REVOCATION_KIND_SUBJECT:
		kind = kindSubject
	default:
		return revocationEvent{}, false
	}
	return revocationEvent{
		kind: kind, tokenID: e.GetTokenId(), sessionID: e.GetSessionId(),
		tenant: e.GetTenant(), subject: e.GetSubject(), subjectKey: e.GetSubjectKey(),
		revokedAtMs: ms(e.GetRevokedAt()), issuedBeforeMs: ms(e.GetIssuedBefore()),
		expiresAtMs: ms(e.GetExpiresAt()),
	}, true
}

// follow keeps the revocation cache fed: snapshot first (or resume from the
// cursor), then live; on a break it marks the cache out of sync and
// reconnects with exponential backoff and full jitter.
func (v *LocalVerifier) follow(ctx context.Context) {
	defer close(v.done)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				v.feed.expire(unixNowMs())
				v.fetchMu.Lock()
				due := time.Since(v.lastFetch) >= v.opts.JWKSMaxAge
				if due {
					v.lastFetch = time.Now()
				}
				v.fetchMu.Unlock()
				if due {
					v.refetch(ctx)
				}
			}
		}
	}()
	jitter := rand.New(rand.NewSource(time.Now().UnixNano()))
	attempt := 0
	for ctx.Err() == nil {
		caughtUp, err := v.watchOnce(ctx)
		v.feed.inSync.Store(false)
		if ctx.Err() != nil {
			return
		}
		if caughtUp {
			attempt = 0
		}
		if Reason(err) == ReasonCursorInvalid && v.Cursor() != "" {
			// Never trust a cursor the server does not know: start over
			// from a snapshot of everything in force.
			v.logf("tessera: the revocation feed refused our cursor; resynchronising from a snapshot")
			v.cursorMu.Lock()
			v.cursor = ""
			v.cursorMu.Unlock()
			v.resyncs.Add(1)
			continue
		}
		if err != nil {
			v.logf("tessera: revocation feed unavailable: %v", status.Code(err))
		}
		ceiling := 100 * time.Millisecond << uint(minInt(attempt, 10))
		if ceiling > v.opts.MaxBackoff {
			ceiling = v.opts.MaxBackoff
		}
		attempt++
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(jitter.Int63n(int64(ceiling) + 1))):
		}
	}
}

// watchOnce follows one stream until it breaks; caughtUp tells whether it
// reached the caught-up marker.
func (v *LocalVerifier) watchOnce(ctx context.Context) (caughtUp bool, err error) {
	v.attempts.Add(1)
	cursor := v.Cursor()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := v.client.stub.WatchRevocations(sctx, &pb.WatchRevocationsRequest{
		AfterCursor:     cursor,
		IncludeSnapshot: cursor == "",
		MarkCaughtUp:    true,
	})
	if err != nil {
		return false, err
	}
	v.connects.Add(1)
	for {
		ev, err := stream.Recv()
		if err != nil {
			if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return caughtUp, ctx.Err()
			}
			return caughtUp, err
		}
		event, ok := toEvent(ev)
		if !ok {
			// The caught-up marker: the cache is complete from here on.
			caughtUp = true
			v.feed.inSync.Store(true)
			continue
		}
		key := v.feed.apply(event)
		if f := v.opts.OnRevocation; f != nil {
			f(event.kindName(), key)
		}
		v.lastEvent.Store(event.revokedAtMs)
		v.cursorMu.Lock()
		v.cursor = ev.GetCursor()
		v.cursorMu.Unlock()
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// constantTimeEq compares in constant time for equal lengths.
func constantTimeEq(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := 0; i < len(a); i++ {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
