package tessera

// The verified-token cache, as the core's verified.rs: a token that passed
// full verification is not parsed or signature-checked again while cached.
//
//   - Key: the exact token string (Go's map hash is seeded at random per
//     process, and a hit compares the whole string).
//   - Value: the claims, the kid that verified them and the generation of
//     the JWK set that did; a hit counts only while that set is in force and
//     holds the kid. A new set (refetch) clears the whole map.
//   - Admission: only tokens that passed verification.
//   - Eviction: CLOCK with a reference bit that only a hit sets: a new
//     entry is evicted first unless it is hit again, so a flood of tokens
//     seen once cycles among themselves and leaves the hot entries.
//   - Bounds: entries and (estimated) bytes, each entry weighing at least
//     maxBytes/maxEntries.
//   - Expiry: every hit re-checks exp/nbf/iat (the caller does); expired
//     entries are dropped on a hit and by a sweep every 10 s.
//
// Everything after the signature (audience, binding, revocation, scopes)
// runs on every call, hit or miss.

import (
	"sync"
	"sync/atomic"
)

const (
	// DefaultCacheEntries and DefaultCacheBytes are the server's defaults.
	DefaultCacheEntries = 65536
	DefaultCacheBytes   = 64 << 20
	sweepIntervalS      = 10
	entryOverhead       = 400
)

type cacheEntry struct {
	token      string
	v          *verified
	kid        string
	generation uint64
	weight     int64
	referenced atomic.Bool
	slot       int
}

// CacheStats are the verified-token cache's counters.
type CacheStats struct {
	Hits, Misses, Evictions, Expired, KeyChanges uint64
	Entries                                      int
	Bytes                                        int64
}

type verifiedCache struct {
	mu         sync.RWMutex
	m          map[string]*cacheEntry
	ring       []*cacheEntry // CLOCK order; nil slots are free
	free       []int
	hand       int
	maxEntries int
	maxBytes   int64
	minWeight  int64
	bytes      int64
	generation uint64
	nextSweepS int64

	hits, misses, evictions, expired, keyChanges atomic.Uint64
}

func newVerifiedCache(maxEntries int, maxBytes int64) *verifiedCache {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil
	}
	minWeight := maxBytes / int64(maxEntries)
	if minWeight < 1 {
		minWeight = 1
	}
	return &verifiedCache{
		m:          map[string]*cacheEntry{},
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		minWeight:  minWeight,
		nextSweepS: -1 << 62,
	}
}

// maintain clears the map for a new key set and sweeps expired entries
// when a sweep is due.
func (c *verifiedCache) maintain(generation uint64, now, leeway int64) {
	c.mu.RLock()
	ok := c.generation == generation && now < c.nextSweepS
	c.mu.RUnlock()
	if ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation != generation {
		if c.generation != 0 {
			c.keyChanges.Add(1)
		}
		c.generation = generation
		c.clearLocked()
	}
	if now >= c.nextSweepS {
		c.nextSweepS = now + sweepIntervalS
		for _, e := range c.ring {
			if e != nil && (e.generation != c.generation || now > satAdd(e.v.exp, leeway)) {
				c.removeLocked(e)
				c.expired.Add(1)
			}
		}
	}
}

func (c *verifiedCache) clearLocked() {
	c.m = map[string]*cacheEntry{}
	c.ring = nil
	c.free = nil
	c.hand = 0
	c.bytes = 0
}

func (c *verifiedCache) removeLocked(e *cacheEntry) {
	if cur, ok := c.m[e.token]; !ok || cur != e {
		return
	}
	delete(c.m, e.token)
	c.ring[e.slot] = nil
	c.free = append(c.free, e.slot)
	c.bytes -= e.weight
}

// get answers the cached claims of token when verified by the set in force
// (generation) that still holds its kid.
func (c *verifiedCache) get(token string, generation uint64, keys *keySet) *verified {
	c.mu.RLock()
	e := c.m[token]
	c.mu.RUnlock()
	if e == nil {
		c.misses.Add(1)
		return nil
	}
	if e.generation != generation || keys.keys[e.kid] == nil {
		c.mu.Lock()
		c.removeLocked(e)
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	if !e.referenced.Load() {
		e.referenced.Store(true)
	}
	c.hits.Add(1)
	return e.v
}

func (c *verifiedCache) insert(token string, v *verified, kid string, generation uint64) {
	weight := int64(entryOverhead + 2*len(token))
	if weight < c.minWeight {
		weight = c.minWeight
	}
	if weight > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if generation != c.generation {
		return // verified by a set no longer in force
	}
	if old := c.m[token]; old != nil {
		c.removeLocked(old)
	}
	for len(c.m) >= c.maxEntries || c.bytes+weight > c.maxBytes {
		c.evictOneLocked()
	}
	e := &cacheEntry{token: token, v: v, kid: kid, generation: generation, weight: weight}
	if n := len(c.free); n > 0 {
		e.slot = c.free[n-1]
		c.free = c.free[:n-1]
		c.ring[e.slot] = e
	} else {
		e.slot = len(c.ring)
		c.ring = append(c.ring, e)
	}
	c.m[token] = e
	c.bytes += weight
}

// evictOneLocked advances the clock hand: a referenced entry gets a second
// chance (its bit cleared), the first unreferenced one goes.
func (c *verifiedCache) evictOneLocked() {
	for steps := 0; steps < 2*len(c.ring)+1; steps++ {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		e := c.ring[c.hand]
		c.hand++
		if e == nil {
			continue
		}
		if e.referenced.Load() {
			e.referenced.Store(false)
			continue
		}
		c.removeLocked(e)
		c.evictions.Add(1)
		return
	}
	c.clearLocked() // unreachable with a non-empty map; keeps the bound
}

func (c *verifiedCache) removeExpired(token string) {
	c.mu.Lock()
	if e := c.m[token]; e != nil {
		c.removeLocked(e)
		c.expired.Add(1)
	}
	c.mu.Unlock()
}

func (c *verifiedCache) stats() CacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(),
		Expired: c.expired.Load(), KeyChanges: c.keyChanges.Load(),
		Entries: len(c.m), Bytes: c.bytes,
	}
}
