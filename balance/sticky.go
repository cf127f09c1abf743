package balance

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// DefaultStickySize is the default capacity of a Sticky's memory.
const DefaultStickySize = 65536

// Sticky builds sticky-session pickers. The proxy hashes the session cookie
// into Request.Key (HasKey false when the request has no cookie); this
// package never sees cookies.
//
// A Sticky remembers key → endpoint Addr in a bounded, expiring LRU
// (github.com/hashicorp/golang-lru/v2/expirable) shared by all the pickers
// it builds, so the memory survives rebuilds. Pick, for a request with a
// key that maps to an address present in the current endpoint set, returns
// that endpoint's index (looked up in an immutable addr → index map built by
// Build, or directly when the entry was written by the same picker);
// otherwise it picks with the inner builder's picker (default round-robin)
// and remembers the choice. Requests without a key just use the inner
// picker.
//
// Hence a user stays on its target when targets are added, removed (other
// than its own) or reweighted, and moves only when its target leaves the set
// — the caller removes draining and unhealthy targets from the endpoints it
// builds with. It does not move back when the old target returns.
//
// Expiry: with a TTL > 0 an entry expires TTL after it was last written; a
// hit rewrites it once its age exceeds TTL/8, so an active session's entry
// slides and expiry acts as an idle timeout between 7/8·TTL and TTL. The
// age uses Request.Now, or the Sticky's clock when that is 0. The LRU's
// own TTL (on the wall clock) removes expired entries from memory.
//
// Locking: the LRU is guarded by its internal mutex — the one lock of this
// package, confined to sticky-sessions; no other algorithm takes it. A hit
// costs one LRU Get (the mutex and a clock read inside the library); a miss
// or a refresh costs an LRU Add, which allocates an entry for a new key. Two
// concurrent first requests of the same new key may be sent to different
// targets; the later choice is remembered.
//
// Each Sticky with a TTL owns a cleanup goroutine of the LRU library that
// never exits (a limitation of golang-lru v2): create one Sticky per
// upstream configuration and reuse it across rebuilds, not one per Build.
type Sticky struct {
	// Inner chooses endpoints for keys without a remembered target.
	Inner Builder
	// Now returns the current time in Unix nanoseconds; nil means the
	// wall clock (read once per Build and advanced by the cheaper
	// monotonic clock). Used only with a TTL, for requests whose Now is 0.
	Now func() int64

	cache *expirable.LRU[uint64, stickyEntry]
	ttl   int64
	gen   atomic.Uint64
}

// stickyEntry is what the LRU remembers for a key. idx is valid for the
// picker of generation gen only; addr is the identity.
type stickyEntry struct {
	addr  string
	stamp int64
	gen   uint64
	idx   uint32
}

// NewSticky returns a sticky-sessions builder remembering up to size keys
// (<= 0: DefaultStickySize) for ttl each (<= 0: no expiry, only LRU
// eviction), choosing new targets with inner (nil: NewRoundRobin()).
func NewSticky(size int, ttl time.Duration, inner Builder) *Sticky {
	if size <= 0 {
		size = DefaultStickySize
	}
	ttl = max(ttl, 0)
	if inner == nil {
		inner = NewRoundRobin()
	}
	return &Sticky{
		Inner: inner,
		cache: expirable.NewLRU[uint64, stickyEntry](size, nil, ttl),
		ttl:   int64(ttl),
	}
}

// Len returns the number of remembered keys (expired ones included until
// the LRU purges them).
func (b *Sticky) Len() int { return b.cache.Len() }

type stickyPicker struct {
	inner   Picker
	addrs   []string
	index   map[string]int
	cache   *expirable.LRU[uint64, stickyEntry]
	ttl     int64
	refresh int64
	gen     uint64
	now     func() int64
}

// Build implements Builder. It panics if b was not made by NewSticky.
func (b *Sticky) Build(eps []Endpoint, prev Picker) Picker {
	if b.cache == nil {
		panic("balance: Sticky must be created with NewSticky")
	}
	var innerPrev Picker
	if sp, ok := prev.(*stickyPicker); ok {
		innerPrev = sp.inner
	}
	p := &stickyPicker{
		inner:   b.Inner.Build(eps, innerPrev),
		addrs:   make([]string, len(eps)),
		index:   make(map[string]int, len(eps)),
		cache:   b.cache,
		ttl:     b.ttl,
		refresh: b.ttl / 8,
		gen:     b.gen.Add(1),
		now:     clockSource(b.Now),
	}
	for i := range eps {
		p.addrs[i] = eps[i].Addr
		p.index[eps[i].Addr] = i
	}
	return p
}

func (p *stickyPicker) Pick(r *Request) int {
	if !r.HasKey || len(p.addrs) == 0 {
		return p.inner.Pick(r)
	}
	var now int64
	if p.ttl > 0 {
		if now = r.Now; now == 0 {
			now = p.now()
		}
	}
	if e, ok := p.cache.Get(r.Key); ok && (p.ttl == 0 || now-e.stamp < p.ttl) {
		i, found := int(e.idx), e.gen == p.gen
		if !found {
			i, found = p.index[e.addr]
		}
		if found {
			if e.gen != p.gen || (p.ttl > 0 && now-e.stamp >= p.refresh) {
				p.cache.Add(r.Key, stickyEntry{addr: e.addr, stamp: now, gen: p.gen, idx: uint32(i)})
			}
			return i
		}
	}
	i := p.inner.Pick(r)
	if i >= 0 {
		p.cache.Add(r.Key, stickyEntry{addr: p.addrs[i], stamp: now, gen: p.gen, idx: uint32(i)})
	}
	return i
}
