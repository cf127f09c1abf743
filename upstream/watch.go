package upstream

import (
	"context"
	"sync"
	"time"

	"github.com/outrigger-gw/outrigger/discovery"
)

// WatchEvent reports what Watch did with one update of a source, for logs
// and metrics.
type WatchEvent struct {
	Source string
	// Kind is "update" (a non-empty set applied), "error" (the source
	// failed; the last set is kept), "empty-pending" (an authoritative
	// empty answer, waiting out the grace) or "empty" (the source's
	// targets were dropped).
	Kind    string
	Err     error
	Targets int
	At      time.Time
	// Observed is the update's discovery.Update.Observed (when the source
	// saw the registry change); zero when the source did not tell.
	Observed time.Time
	// Live is when the set became live: the moment SetTargets (the
	// upstream's picker swap) returned, for "update" and for the "empty"
	// that drops the targets after the grace; zero otherwise.
	Live time.Time
}

// WatchOptions tune Watch.
type WatchOptions struct {
	// EmptyGrace is how long an authoritative empty answer must stand
	// before the source's targets are dropped (a registry that blinks
	// empty for a moment must not take every route down).
	EmptyGrace time.Duration
	// OnEvent, when set, receives every WatchEvent.
	OnEvent func(WatchEvent)
}

// Watch runs src and applies its full target sets to the upstream under the
// source's name until ctx ends. An error keeps the last good set; an empty
// set applies after EmptyGrace unless a non-empty one arrives first. When
// ctx ends the source's targets stay as they are: the caller decides
// whether to drop them (SetTargets(src.Name(), nil)).
func (u *Upstream) Watch(ctx context.Context, src discovery.Source, o WatchOptions) {
	name := src.Name()
	emit := func(ev WatchEvent) {
		if o.OnEvent != nil {
			o.OnEvent(ev)
		}
	}
	var (
		mu      sync.Mutex // guards pending and have
		pending *time.Timer
		have    bool // the source's last applied set is non-empty
	)
	stopPending := func() {
		if pending != nil {
			pending.Stop()
			pending = nil
		}
	}
	defer func() {
		mu.Lock()
		stopPending()
		mu.Unlock()
	}()
	src.Run(ctx, func(up discovery.Update) {
		at := up.At
		if at.IsZero() {
			at = time.Now()
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case up.Err != nil:
			emit(WatchEvent{Source: name, Kind: "error", Err: up.Err, At: at, Observed: up.Observed})
		case len(up.Targets) > 0:
			stopPending()
			have = true
			u.SetTargets(name, convertTargets(up.Targets))
			emit(WatchEvent{Source: name, Kind: "update", Targets: len(up.Targets), At: at, Observed: up.Observed, Live: time.Now()})
		case !have:
			// Nothing to take away.
			emit(WatchEvent{Source: name, Kind: "empty", At: at, Observed: up.Observed})
		case pending == nil:
			emit(WatchEvent{Source: name, Kind: "empty-pending", At: at, Observed: up.Observed})
			var t *time.Timer
			t = time.AfterFunc(o.EmptyGrace, func() {
				mu.Lock()
				defer mu.Unlock()
				if pending != t || ctx.Err() != nil {
					return // superseded
				}
				pending, have = nil, false
				u.SetTargets(name, nil)
				now := time.Now()
				emit(WatchEvent{Source: name, Kind: "empty", At: now, Observed: up.Observed, Live: now})
			})
			pending = t
		}
	})
}

func convertTargets(ts []discovery.Target) []Target {
	out := make([]Target, len(ts))
	for i, t := range ts {
		out[i] = Target{Addr: t.Addr, Weight: t.Weight, Tags: t.Tags, Meta: t.Meta, Priority: t.Priority, Backup: t.Backup}
	}
	return out
}
