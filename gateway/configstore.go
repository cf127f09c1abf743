package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/state"
)

// The configuration store: where the admin layer stands (in force, pending,
// lost), changes to it (Mutate, Layer and CompareAndSet, ResetState) and
// the fleet's changes (adoption, republishing). Every change holds g.write
// from building to commit and does its store I/O holding nothing else;
// only the commit (commit, setLayer) takes the runtime lock g.mu. The
// ...Locked functions of this file want g.write held (refusalLocked: g.mu
// or g.write).

// maxMutateRetries bounds compare-and-set retries against a busy store.
const maxMutateRetries = 16

// storeTimeout bounds one store operation made outside an admin request
// (republishing, resetting after a conflict).
const storeTimeout = 10 * time.Second

// pendingLayer is the store's latest layer when it does not build with
// this sidecar's configuration file.
type pendingLayer struct {
	doc     *state.Doc
	version uint64
	err     error
}

// Mutate implements admin.Controller: fn edits a copy of the admin layer;
// the result is built, persisted, then swapped in — or nothing happens.
// fn always edits the latest layer the store holds: while that layer does
// not build here (pending) the change is refused with 409, since writing
// over the older layer in force would discard changes this sidecar never
// saw. fn runs with no lock held; a change committed meanwhile makes it
// run again on the new layer, after a random wait (state.BackOff).
func (g *Gateway) Mutate(ctx context.Context, fn func(*state.Doc) error) error {
	for attempt := range maxMutateRetries {
		if attempt > 0 {
			if err := state.BackOff(ctx, attempt); err != nil {
				return err
			}
		}
		doc, rev, err := g.Layer()
		if err != nil {
			return err
		}
		if err := fn(doc); err != nil {
			return err
		}
		_, err = g.CompareAndSet(ctx, rev, doc, nil)
		if !errors.Is(err, state.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateRetries)
}

// Layer implements admin.Controller: a copy of the admin layer in force and
// its revision, or the 409 refusal while the store's latest layer does not
// build here.
func (g *Gateway) Layer() (*state.Doc, uint64, error) {
	if g.draftMode() {
		return g.draftLayer()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending != nil {
		return nil, 0, g.refusalLocked()
	}
	return g.doc.Clone(), g.rev, nil
}

// CompareAndSet implements admin.Controller: doc replaces the admin layer
// if rev (from Layer) is still the revision in force. It is built, saved
// with the store's check-and-set (g.mu is not held meanwhile), then
// committed. A stale rev, or a store that holds a newer layer (which is
// then adopted), answers an error wrapping state.ErrConflict: read Layer
// again and retry. It returns the effective configuration doc built to
// (read-only): merged, when the caller made it, else the build's merge.
func (g *Gateway) CompareAndSet(ctx context.Context, rev uint64, doc *state.Doc, merged *admin.Merged) (*config.File, error) {
	if g.draftMode() {
		return g.draftCompareAndSet(ctx, rev, doc, merged)
	}
	g.write.Lock()
	defer g.write.Unlock()
	if g.pending != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		return nil, g.refusalLocked()
	}
	if rev != g.rev {
		return nil, fmt.Errorf("admin layer revision %d is no longer in force (now %d): %w", rev, g.rev, state.ErrConflict)
	}
	p, err := g.buildMergedLocked(g.base, doc, merged)
	if err != nil {
		var ae *admin.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, &admin.Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	version, lost := g.docVersion, g.lost
	if g.store != nil {
		prev := g.docVersion
		if g.lost {
			prev = 0 // the store lost the layer: recreate it, with this change
		}
		v, err := g.store.Save(ctx, doc, prev)
		if errors.Is(err, state.ErrConflict) {
			if err := g.reloadDocLocked(ctx); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("the store holds a newer admin layer: %w", state.ErrConflict)
		}
		if err != nil {
			return nil, persistErr(err)
		}
		if g.lost {
			g.log.Warn().Uint64("version", v).Msg("admin state: the store's copy is back (recreated with this admin change)")
		}
		version, lost = v, false
	}
	g.commit(p, func() { g.docVersion, g.lost = version, lost })
	g.layerMetricsLocked()
	return p.cfg, nil
}

// Effective implements admin.Controller: the effective configuration of
// the layer at revision rev (from Layer) while it is the one in force (in
// draft mode: while rev is the draft this sidecar saved last). It is the
// merge that layer was built with; callers only read it.
func (g *Gateway) Effective(rev uint64) (*config.File, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draftMode() {
		return g.draftEffectiveLocked(rev)
	}
	if g.pending != nil || rev != g.rev || g.cfg == nil {
		return nil, false
	}
	return g.cfg, true
}

// persistErr is a failed Save's answer: a refusal of the fleet group
// (a staged publish running) is a 409.
func persistErr(err error) error {
	var refused *state.RefusedError
	if errors.As(err, &refused) {
		return &admin.Error{Status: http.StatusConflict, Message: refused.Reason}
	}
	return fmt.Errorf("persist admin state: %w", err)
}

// refusalLocked is Mutate's answer while the store's latest layer does not
// build here.
func (g *Gateway) refusalLocked() error {
	return &admin.Error{Status: http.StatusConflict, Message: fmt.Sprintf(
		"the fleet's admin layer (version %d) does not build with this sidecar's configuration file (%v); "+
			"this sidecar keeps its last good configuration (admin layer version %d) and refuses admin changes until that layer builds: "+
			"fix the configuration file and reload, change the layer from a sidecar where it builds, or reset it (DELETE /state)",
		g.pending.version, g.pending.err, g.docVersion)}
}

// ResetState implements admin.Controller: an empty layer, saved with
// check-and-set over the latest stored version, then applied.
func (g *Gateway) ResetState(ctx context.Context) error {
	g.write.Lock()
	defer g.write.Unlock()
	empty := &state.Doc{}
	p, err := g.buildLocked(g.base, empty)
	if err != nil {
		return fmt.Errorf("the configuration file alone does not build: %w", err)
	}
	if g.store != nil {
		prev := g.latestVersionLocked()
		if g.lost {
			prev = 0
		}
		saved := false
		var version uint64
		for range maxMutateRetries {
			v, err := g.store.Save(ctx, empty, prev)
			if errors.Is(err, state.ErrConflict) {
				// Whatever is stored now is discarded too: only its
				// version matters.
				if _, prev, err = g.store.Load(ctx); err != nil {
					return fmt.Errorf("load admin state: %w", err)
				}
				continue
			}
			if err != nil {
				return persistErr(err)
			}
			version, saved = v, true
			break
		}
		if !saved {
			return fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateRetries)
		}
		g.mu.Lock()
		g.docVersion = version
		g.mu.Unlock()
	}
	g.commit(p, func() { g.pending, g.lost = nil, false })
	g.layerMetricsLocked()
	g.log.Warn().Uint64("version", g.docVersion).Msg("admin state reset: every admin change was discarded")
	return nil
}

// latestVersionLocked is the latest store version this sidecar knows of:
// the pending layer's, else the one in force.
func (g *Gateway) latestVersionLocked() uint64 {
	if g.pending != nil {
		return g.pending.version
	}
	return g.docVersion
}

// reloadDocLocked reads the store's current layer (after a conflict) and
// adopts it.
func (g *Gateway) reloadDocLocked(ctx context.Context) error {
	doc, v, err := g.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load admin state: %w", err)
	}
	g.observeLocked(doc, v)
	return nil
}

// observeLocked takes in a state of the store: a layer someone else wrote
// (another sidecar), or the store's copy missing (version 0). It reports
// whether the layer was applied.
//
// A missing copy after a known version is a loss, not an empty layer (an
// empty layer is only ever written by ResetState): the layer in force
// stays and the caller republishes the last known layer (republishLocked).
// A layer that does not build here becomes pending: the running
// configuration stays, Mutate refuses changes, and the error is logged
// once per version.
func (g *Gateway) observeLocked(doc *state.Doc, v uint64) bool {
	defer g.layerMetricsLocked()
	if v == 0 && g.latestVersionLocked() != 0 {
		if !g.lost {
			g.setLayer(func() { g.lost = true })
			g.log.Error().Uint64("last_version", g.latestVersionLocked()).
				Msg("admin state: the store no longer holds the admin layer; keeping the last known one and publishing it again")
		}
		return false
	}
	g.setLayer(func() { g.lost = false })
	if doc == nil {
		doc = &state.Doc{}
	}
	p, err := g.buildLocked(g.base, doc)
	if err != nil {
		if g.pending == nil || g.pending.version != v {
			g.log.Error().Err(err).Uint64("version", v).Uint64("running_version", g.docVersion).
				Msg("admin state does not apply to this configuration; keeping the running one and refusing admin changes until it does")
		}
		g.setLayer(func() { g.pending = &pendingLayer{doc: doc, version: v, err: err} })
		return false
	}
	if g.pending != nil {
		g.log.Info().Uint64("version", v).Msg("admin state applies to this configuration again")
	}
	g.commit(p, func() { g.pending, g.docVersion = nil, v })
	return true
}

// republishLocked writes the last known layer to a store that lost it,
// create-only, so one sidecar of the fleet wins and the others adopt its
// copy. It returns nil when there is nothing more to do; g.lost stays set
// while the store still lacks the layer.
func (g *Gateway) republishLocked(ctx context.Context) error {
	if !g.lost {
		return nil
	}
	last := g.doc
	if g.pending != nil {
		last = g.pending.doc
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	known := g.latestVersionLocked()
	v, err := g.store.Save(ctx, last, 0)
	switch {
	case errors.Is(err, state.ErrConflict):
		// Someone wrote it first (another sidecar republishing): adopt.
		return g.reloadDocLocked(ctx)
	case err != nil:
		return err
	}
	g.setLayer(func() {
		g.lost = false
		if g.pending != nil {
			g.pending.version = v
		} else {
			g.docVersion = v
		}
	})
	g.layerMetricsLocked()
	g.log.Warn().Uint64("last_version", known).Uint64("version", v).Msg("admin state: published the last known layer again")
	return nil
}

// setLayer changes where the store's layer stands; the caller holds
// g.write.
func (g *Gateway) setLayer(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f()
}

// layerMetricsLocked sets the admin layer state gauge.
func (g *Gateway) layerMetricsLocked() {
	g.metrics.setLayerState(g.layerStateLocked())
	g.kickFleet()
}

// layerStateLocked is the admin layer's state word.
func (g *Gateway) layerStateLocked() string {
	switch {
	case g.pending != nil:
		return admin.LayerNotApplied
	case g.lost:
		return admin.LayerLost
	}
	return admin.LayerInSync
}

// Doc implements admin.Controller.
func (g *Gateway) Doc() *state.Doc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.doc.Clone()
}

// View implements admin.Controller: the layer in force and its merge.
func (g *Gateway) View() (*state.Doc, *config.File) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.doc.Clone(), g.cfg
}

// File implements admin.Controller: the entities the admin layer is
// over: the file's own, or those of the declarative document the layer
// holds (POST /config).
func (g *Gateway) File() *config.File {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.layerBase != nil {
		return g.layerBase
	}
	return g.base
}

// The gateway is what the admin API steers.
var _ admin.Controller = (*Gateway)(nil)

// remoteChange takes in a state of the store another sidecar of the fleet
// wrote (or the store's copy vanishing); it runs on the store's watch
// goroutine. A lost copy is published again, retried with backoff until
// the store holds a layer again or ctx ends.
func (g *Gateway) remoteChange(ctx context.Context, doc *state.Doc, v uint64) {
	g.write.Lock()
	if v == g.latestVersionLocked() && !g.lost {
		g.write.Unlock()
		return // what we hold (versions may go backwards when Consul loses its data)
	}
	if g.observeLocked(doc, v) {
		g.log.Info().Uint64("version", v).Msg("admin state changed by another sidecar; applied")
	}
	g.write.Unlock()
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !discovery.Sleep(ctx, discovery.Backoff(attempt, 100*time.Millisecond, 5*time.Second, discovery.FullJitter)) {
			return
		}
		g.write.Lock()
		if !g.lost {
			g.write.Unlock()
			return
		}
		err := g.republishLocked(ctx)
		g.write.Unlock()
		if err != nil {
			g.log.Warn().Err(err).Int("attempt", attempt+1).Msg("admin state: publishing the last known layer again failed; retrying")
		}
	}
}
