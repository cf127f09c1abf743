package balance

import (
	"fmt"
	"time"
)

// Kong algorithm names accepted by ForName.
const (
	AlgoRoundRobin        = "round-robin"
	AlgoConsistentHashing = "consistent-hashing"
	AlgoLeastConnections  = "least-connections"
	AlgoLatency           = "latency"
	AlgoStickySessions    = "sticky-sessions"
	AlgoRandom            = "random"
)

// Options configures the builders ForName makes. The zero value gives
// defaults everywhere; each field is used only by the algorithms named in
// its comment.
type Options struct {
	// Slots: consistent-hashing ring points per endpoint of the largest
	// weight, MinSlots..MaxSlots; 0 means DefaultSlots.
	Slots int
	// MaxCycle: round-robin cycle cap; 0 means DefaultMaxCycle.
	MaxCycle int
	// ScanLimit: least-connections full-scan limit; 0 means
	// DefaultScanLimit.
	ScanLimit int
	// StickySize and StickyTTL: sticky-sessions memory capacity (0 means
	// DefaultStickySize) and entry TTL (0 means no expiry).
	StickySize int
	StickyTTL  time.Duration
	// StickyInner: the algorithm sticky-sessions uses for new keys, any
	// name but sticky-sessions; "" means round-robin.
	StickyInner string
	// Rand: random source of every randomised algorithm (round-robin's
	// starting slot included); nil means math/rand/v2's rand.Uint64.
	Rand func() uint64
	// Now: clock (Unix nanoseconds) of latency and sticky-sessions; nil
	// means the wall clock.
	Now func() int64
}

// ForName returns a builder for a Kong algorithm name: "round-robin" (also
// ""), "consistent-hashing", "least-connections", "latency",
// "sticky-sessions" and "random". Each call makes a new builder; for
// sticky-sessions that includes a new, empty session memory, so call it once
// per upstream configuration, not per rebuild.
func ForName(name string, opts Options) (Builder, error) {
	switch name {
	case "", AlgoRoundRobin:
		if opts.MaxCycle < 0 {
			return nil, fmt.Errorf("balance: round-robin: negative max cycle %d", opts.MaxCycle)
		}
		return &RoundRobin{MaxCycle: opts.MaxCycle, Rand: opts.Rand}, nil
	case AlgoConsistentHashing:
		if opts.Slots != 0 && (opts.Slots < MinSlots || opts.Slots > MaxSlots) {
			return nil, fmt.Errorf("balance: consistent-hashing: slots %d outside %d..%d", opts.Slots, MinSlots, MaxSlots)
		}
		return &ConsistentHash{Slots: opts.Slots, Rand: opts.Rand}, nil
	case AlgoLeastConnections:
		return &LeastConnections{Rand: opts.Rand, ScanLimit: opts.ScanLimit}, nil
	case AlgoLatency:
		return &Latency{Rand: opts.Rand, Now: opts.Now}, nil
	case AlgoRandom:
		return &Random{Rand: opts.Rand}, nil
	case AlgoStickySessions:
		if opts.StickySize < 0 || opts.StickyTTL < 0 {
			return nil, fmt.Errorf("balance: sticky-sessions: negative size or TTL")
		}
		if opts.StickyInner == AlgoStickySessions {
			return nil, fmt.Errorf("balance: sticky-sessions cannot be its own inner algorithm")
		}
		inner, err := ForName(opts.StickyInner, opts)
		if err != nil {
			return nil, err
		}
		s := NewSticky(opts.StickySize, opts.StickyTTL, inner)
		s.Now = opts.Now
		return s, nil
	}
	return nil, fmt.Errorf("balance: unknown algorithm %q", name)
}
