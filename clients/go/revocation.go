package tessera

import (
	"sync"
	"sync/atomic"
)

// Revocation kinds, as the feed sends them.
const (
	kindToken   = 1
	kindSession = 2
	kindSubject = 3
)

// revocationEvent is one feed event, times in Unix ms.
type revocationEvent struct {
	kind      int
	tokenID   string
	sessionID string
	tenant    string
	subject   string
	// subjectKey is the server's key of (tenant, subject) on subject
	// events (RevocationEvent.subject_key); "" from servers before it,
	// whose events carry the raw subject instead.
	subjectKey     string
	revokedAtMs    int64
	issuedBeforeMs int64
	expiresAtMs    int64
}

type cutoff struct{ beforeMs, expiresMs int64 }

// revocationCache holds the revocations in force, fed in log order from the
// feed, and whether it is complete (the core's RevocationCache).
type revocationCache struct {
	mu       sync.RWMutex
	tokens   map[string]int64 // jti -> expires at (ms)
	sessions map[string]int64 // sid -> expires at (ms)
	subjects map[string]cutoff
	inSync   atomic.Bool
}

func newRevocationCache() *revocationCache {
	return &revocationCache{tokens: map[string]int64{}, sessions: map[string]int64{}, subjects: map[string]cutoff{}}
}

// kindName is the kind as Options.OnRevocation names it.
func (ev revocationEvent) kindName() string {
	switch ev.kind {
	case kindToken:
		return "token"
	case kindSession:
		return "session"
	default:
		return "subject"
	}
}

// apply puts ev in force; it answers the key it is kept under (the jti,
// the session id or the subject's key).
func (c *revocationCache) apply(ev revocationEvent) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.kind {
	case kindToken:
		c.tokens[ev.tokenID] = ev.expiresAtMs
		return ev.tokenID
	case kindSession:
		c.sessions[ev.sessionID] = ev.expiresAtMs
		return ev.sessionID
	case kindSubject:
		// The server's key when it sends one: the raw subject is then
		// not needed (docs/integrating.md, "Following the feed").
		key := ev.subjectKey
		if key == "" {
			key = subjectKey(ev.tenant, ev.subject)
		}
		e := c.subjects[key]
		if ev.issuedBeforeMs > e.beforeMs {
			e.beforeMs = ev.issuedBeforeMs
		}
		if ev.expiresAtMs > e.expiresMs {
			e.expiresMs = ev.expiresAtMs
		}
		c.subjects[key] = e
		return key
	}
	return ""
}

// expire drops entries whose tokens have all expired by nowMs.
func (c *revocationCache) expire(nowMs int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, exp := range c.tokens {
		if exp <= nowMs {
			delete(c.tokens, k)
		}
	}
	for k, exp := range c.sessions {
		if exp <= nowMs {
			delete(c.sessions, k)
		}
	}
	for k, e := range c.subjects {
		if e.expiresMs <= nowMs {
			delete(c.subjects, k)
		}
	}
}

func (c *revocationCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.tokens) + len(c.sessions) + len(c.subjects)
}

// cutoffKills: a subject cut-off (ms) kills every token issued (whole
// seconds) before it, and one issued in the same second.
func cutoffKills(iat, cutoffMs int64) bool {
	return iat*1000 < cutoffMs
}

type cacheAnswer int

const (
	notRevoked cacheAnswer = iota
	revoked
	unknown // out of sync: fail closed
)

func (c *revocationCache) check(jti, sid, subjectKey string, iat, nowMs int64) cacheAnswer {
	if !c.inSync.Load() {
		return unknown
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if exp, ok := c.tokens[jti]; ok && exp > nowMs {
		return revoked
	}
	if exp, ok := c.sessions[sid]; ok && exp > nowMs {
		return revoked
	}
	if e, ok := c.subjects[subjectKey]; ok && e.expiresMs > nowMs && cutoffKills(iat, e.beforeMs) {
		return revoked
	}
	return notRevoked
}
