package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// A gateway group (fleet.group): the sidecar runs the version of the
// group's admin layer its group's head asks of it (state.FleetStore is its
// Store), reports what it runs under a Consul session, evaluates the
// group's staged publish, and serves the /fleet endpoints (admin.Fleet).
// In a group that does not auto-publish, admin changes edit the group's
// draft (Layer and CompareAndSet go to it) and are validated against this
// sidecar's configuration file without being applied.

// fleetStageTick is how often a running staged publish is evaluated.
const fleetStageTick = time.Second

// fleetRT is the sidecar's part of its group; immutable after New (the
// store and gauges are safe for concurrent use).
type fleetRT struct {
	store *state.FleetStore
	auto  bool
	every time.Duration
	// kick (capacity 1) asks the reporter to report at once: the layer
	// in force or its state changed.
	kick chan struct{}

	drift, version, target prometheus.Gauge
}

// fleetID is the sidecar's id: fleet.id, else the host name and the proxy
// listen address.
func fleetID(cfg *config.File) string {
	if cfg.Fleet.ID != "" {
		return cfg.Fleet.ID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "@" + cfg.Proxy.Listen
}

// openFleet sets g.fleet up when the file names a group (and no store was
// injected).
func (g *Gateway) openFleet(cfg *config.File, o Options, storeErr func(error)) error {
	if !cfg.Fleet.Enabled() || o.Store != nil {
		return nil
	}
	fs, err := state.OpenFleet(cfg.Admin, cfg.Fleet, fleetID(cfg), g.env, storeErr)
	if err != nil {
		return cfg.Errorf(cfg.Fleet.Pos, "fleet: %v", err)
	}
	f := &fleetRT{store: fs, auto: cfg.Fleet.Auto(), every: cfg.Fleet.ReportEvery(), kick: make(chan struct{}, 1),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "outrigger", Name: "fleet_drift",
			Help: "1 while this sidecar does not run the version its gateway group asks of it, or failed to apply it; else 0."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "outrigger", Name: "fleet_version",
			Help: "The gateway group's version this sidecar runs."}),
		target: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "outrigger", Name: "fleet_target_version",
			Help: "The gateway group's version this sidecar should run (its group's head)."}),
	}
	g.registry.MustRegister(f.drift, f.version, f.target)
	g.fleet = f
	return nil
}

// fleetAPI is what the admin API serves under /fleet (nil: nothing).
func (g *Gateway) fleetAPI() admin.Fleet {
	if g.fleet == nil {
		return nil
	}
	return g
}

// kickFleet asks the reporter for a report now.
func (g *Gateway) kickFleet() {
	if g.fleet == nil {
		return
	}
	select {
	case g.fleet.kick <- struct{}{}:
	default:
	}
}

// draftMode reports whether admin changes go to the group's draft.
func (g *Gateway) draftMode() bool { return g.fleet != nil && !g.fleet.auto }

// draftLayer is Layer in draft mode: the draft and its revision.
func (g *Gateway) draftLayer() (*state.Doc, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	doc, rev, err := g.fleet.store.LoadDraft(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("load the group's draft: %w", err)
	}
	return doc, rev, nil
}

// draftCompareAndSet is CompareAndSet in draft mode: doc must build with
// this sidecar's file; it is saved as the draft if rev is still its
// revision, and applied nowhere until published.
func (g *Gateway) draftCompareAndSet(ctx context.Context, rev uint64, doc *state.Doc, merged *admin.Merged) (*config.File, error) {
	cfg, file, err := g.validateOver(doc, merged)
	if err != nil {
		return nil, err
	}
	saved, err := g.fleet.store.SaveDraft(ctx, doc, rev)
	if err != nil {
		if errors.Is(err, state.ErrConflict) {
			return nil, fmt.Errorf("the group's draft changed meanwhile: %w", state.ErrConflict)
		}
		return nil, fmt.Errorf("persist the group's draft: %w", err)
	}
	g.mu.Lock()
	g.draftBuilt = draftBuild{rev: saved, file: file, cfg: cfg}
	g.mu.Unlock()
	return cfg, nil
}

// draftBuild is a saved draft's revision, the configuration file it was
// built over and its effective configuration.
type draftBuild struct {
	rev  uint64
	file *config.File
	cfg  *config.File
}

// draftEffectiveLocked is Effective in draft mode: the merge of the draft
// at revision rev when this sidecar saved it last and the file is still
// the one it was built over. Revision 0 (no draft: the stable version's
// copy) is never known. The caller holds g.mu.
func (g *Gateway) draftEffectiveLocked(rev uint64) (*config.File, bool) {
	b := g.draftBuilt
	if rev == 0 || rev != b.rev || b.file != g.base || b.cfg == nil {
		return nil, false
	}
	return b.cfg, true
}

// validate builds doc over the configuration file without committing it:
// the effective configuration, or a 400 *admin.Error when it does not
// build.
func (g *Gateway) validate(doc *state.Doc) (*config.File, error) {
	cfg, _, err := g.validateOver(doc, nil)
	return cfg, err
}

// validateOver is validate of doc, merged by the caller when merged is
// not nil; it also returns the configuration file doc was built over.
func (g *Gateway) validateOver(doc *state.Doc, merged *admin.Merged) (*config.File, *config.File, error) {
	g.write.Lock()
	defer g.write.Unlock()
	p, err := g.buildMergedLocked(g.base, doc, merged)
	if err != nil {
		var ae *admin.Error
		if errors.As(err, &ae) {
			return nil, nil, err
		}
		return nil, nil, &admin.Error{Status: http.StatusBadRequest, Message: "the version does not build with this sidecar's configuration file: " + err.Error()}
	}
	return p.cfg, g.base, nil
}

// FleetStatus implements admin.Fleet.
func (g *Gateway) FleetStatus(ctx context.Context, group string) (admin.FleetStatus, error) {
	fs := g.fleet.store
	if group == "" {
		group = fs.Group()
	}
	h, _, err := fs.ReadHead(ctx, group)
	if err != nil {
		return admin.FleetStatus{}, err
	}
	reports, err := fs.Sidecars(ctx, group)
	if err != nil {
		return admin.FleetStatus{}, err
	}
	out := admin.FleetStatus{Group: group, ID: fs.ID(), AutoPublish: g.fleet.auto,
		Version: h.Version, Latest: h.Latest, Stage: h.Stage, Sidecars: []admin.FleetSidecar{}}
	if group != fs.Group() {
		// Another group's mode is its sidecars' setting, read from their
		// reports: auto-publishing when every live one says so.
		out.AutoPublish = len(reports) > 0
		for _, r := range reports {
			out.AutoPublish = out.AutoPublish && r.AutoPublish
		}
	}
	for _, r := range reports {
		s := admin.FleetSidecar{Report: r}
		want := h.Target(r.ID)
		switch {
		case !r.Applied:
			s.Drift, s.DriftReason = true, fmt.Sprintf("version %d did not apply: %s", r.Target, r.Error)
		case r.Version != want:
			s.Drift, s.DriftReason = true, fmt.Sprintf("runs version %d; the group asks for %d", r.Version, want)
		}
		if s.Drift {
			out.Drifted++
		}
		out.Sidecars = append(out.Sidecars, s)
	}
	return out, nil
}

// FleetVersions implements admin.Fleet.
func (g *Gateway) FleetVersions(ctx context.Context) ([]state.Version, error) {
	return g.fleet.store.Versions(ctx, g.fleet.store.Group())
}

// FleetVersion implements admin.Fleet.
func (g *Gateway) FleetVersion(ctx context.Context, n uint64) (*state.Version, error) {
	return g.fleet.store.ReadVersion(ctx, g.fleet.store.Group(), n)
}

// FleetDraft implements admin.Fleet.
func (g *Gateway) FleetDraft(ctx context.Context) (*state.Doc, uint64, error) {
	return g.fleet.store.LoadDraft(ctx)
}

// FleetPublish implements admin.Fleet: the draft, validated here, as the
// next version.
func (g *Gateway) FleetPublish(ctx context.Context, p admin.FleetPublish) (state.Version, error) {
	if g.fleet.auto {
		return state.Version{}, &state.RefusedError{Reason: fmt.Sprintf("group %q publishes every admin change at once (fleet.auto_publish: true): it has no draft to publish", g.fleet.store.Group())}
	}
	draft, _, err := g.fleet.store.LoadDraft(ctx)
	if err != nil {
		return state.Version{}, err
	}
	if _, err := g.validate(draft); err != nil {
		return state.Version{}, err
	}
	if p.Stage != nil {
		// The first step is judged on the traffic from now on.
		reports, err := g.fleet.store.Sidecars(ctx, g.fleet.store.Group())
		if err != nil {
			return state.Version{}, err
		}
		st := *p.Stage
		st.Baseline = baselineOf(reports)
		p.Stage = &st
	}
	v, err := g.fleet.store.Publish(ctx, state.Publication{Doc: draft, Author: p.Author, Message: p.Message, Source: "publish", Stage: p.Stage})
	v.Doc = nil
	return v, err
}

// FleetRollback implements admin.Fleet.
func (g *Gateway) FleetRollback(ctx context.Context, p admin.FleetRollback) (*state.Head, *state.Version, error) {
	fs := g.fleet.store
	if p.Version == 0 {
		now := time.Now()
		h, err := fs.UpdateHead(ctx, "", func(h *state.Head) error {
			if !h.Running() {
				return &state.RefusedError{Reason: "no staged publish is running: name the version to roll back to"}
			}
			reason := "rolled back by " + p.Author
			if p.Message != "" {
				reason += ": " + p.Message
			}
			stopStage(h, now, reason)
			return nil
		})
		if err == nil {
			g.log.Warn().Uint64("version", h.Stage.Version).Str("author", p.Author).Msg("staged publish rolled back by hand")
		}
		return h, nil, err
	}
	old, err := fs.ReadVersion(ctx, fs.Group(), p.Version)
	if err != nil {
		return nil, nil, versionErr(err)
	}
	if _, err := g.validate(old.Doc); err != nil {
		return nil, nil, err
	}
	v, err := fs.Publish(ctx, state.Publication{Doc: old.Doc, Author: p.Author, Message: p.Message, Source: "rollback", From: strconv.FormatUint(p.Version, 10)})
	v.Doc = nil
	return nil, &v, err
}

// FleetPromote implements admin.Fleet: a version of this group, as it is,
// as the next version of another.
func (g *Gateway) FleetPromote(ctx context.Context, p admin.FleetPromote) (state.Version, error) {
	fs := g.fleet.store
	if p.ToGroup == fs.Group() {
		return state.Version{}, &admin.Error{Status: http.StatusBadRequest, Message: "to_group is this sidecar's own group: use POST /fleet/rollback",
			Fields: map[string]string{"to_group": "the group the version comes from"}}
	}
	old, err := fs.ReadVersion(ctx, fs.Group(), p.Version)
	if err != nil {
		return state.Version{}, versionErr(err)
	}
	if _, err := g.validate(old.Doc); err != nil {
		return state.Version{}, err
	}
	msg := p.Message
	if msg == "" {
		msg = old.Message
	}
	v, err := fs.Publish(ctx, state.Publication{Group: p.ToGroup, Doc: old.Doc, Author: p.Author, Message: msg, Source: "promote",
		From: fs.Group() + "/" + strconv.FormatUint(p.Version, 10)})
	v.Doc = nil
	return v, err
}

// versionErr names the version field when the version asked for is not
// kept.
func versionErr(err error) error {
	var refused *state.RefusedError
	if errors.As(err, &refused) {
		return &admin.Error{Status: http.StatusBadRequest, Message: refused.Reason, Fields: map[string]string{"version": "no such version"}}
	}
	return err
}

// FleetStage implements admin.Fleet.
func (g *Gateway) FleetStage(ctx context.Context, p admin.FleetStageChange) (*state.Head, error) {
	fs := g.fleet.store
	reports, err := fs.Sidecars(ctx, fs.Group())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return fs.UpdateHead(ctx, "", func(h *state.Head) error { return widenStage(h, p.Percent, p.Sidecars, reports, now) })
}

// runFleet reports this sidecar and evaluates its group's staged publish
// until ctx ends; then the report is withdrawn (its session destroyed).
func (g *Gateway) runFleet(ctx context.Context) {
	go g.runFleetStages(ctx)
	fs := g.fleet.store
	rep := fs.NewReporter(3 * g.fleet.every)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = rep.Close(cctx)
	}()
	t := time.NewTicker(g.fleet.every)
	defer t.Stop()
	var (
		lastVersion uint64
		appliedAt   int64
		failing     bool
	)
	for {
		r := g.fleetReport()
		if r.Version != lastVersion || appliedAt == 0 {
			lastVersion, appliedAt = r.Version, time.Now().UnixMilli()
		}
		r.AppliedAt = appliedAt
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := rep.Report(cctx, r)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			g.log.Warn().Err(err).Msg("fleet: reporting this sidecar failed; retrying")
		case err == nil && failing:
			failing = false
			g.log.Info().Msg("fleet: reporting this sidecar again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.fleet.kick:
		}
	}
}

// fleetReport is this sidecar's report now; it sets the fleet gauges.
func (g *Gateway) fleetReport() state.Report {
	fs := g.fleet.store
	r := state.Report{ID: fs.ID(), Group: fs.Group(), Applied: true, AutoPublish: g.fleet.auto, ReportedAt: time.Now().UnixMilli()}
	r.Target = fs.LastHead().Target(fs.ID())
	g.mu.Lock()
	r.Version = g.docVersion
	switch {
	case g.pending != nil:
		r.Applied, r.Error, r.Target = false, g.pending.err.Error(), g.pending.version
	case g.lost:
		r.Applied, r.Error = false, "the store no longer holds the group's head; publishing the last known version again"
	}
	for _, st := range g.stats {
		p, c := st.primary.Snapshot(), st.canary.Snapshot()
		r.Requests += p.Requests + c.Requests
		r.Errors += p.Errors + c.Errors
	}
	g.mu.Unlock()
	drift := 0.0
	if !r.Applied || r.Version != r.Target {
		drift = 1
	}
	g.fleet.drift.Set(drift)
	g.fleet.version.Set(float64(r.Version))
	g.fleet.target.Set(float64(r.Target))
	return r
}

// runFleetStages evaluates the group's running staged publish every
// fleetStageTick until ctx ends.
func (g *Gateway) runFleetStages(ctx context.Context) {
	t := time.NewTicker(fleetStageTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.evaluateStage(ctx, now)
		}
	}
}

// evaluateStage takes the running stage's next decision, if any.
func (g *Gateway) evaluateStage(ctx context.Context, now time.Time) {
	fs := g.fleet.store
	if !fs.LastHead().Running() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	reports, err := fs.Sidecars(ctx, fs.Group())
	if err != nil {
		g.log.Warn().Err(err).Msg("fleet: reading the group's reports for its staged publish failed")
		return
	}
	var msg string
	var rolledBack bool
	_, err = fs.UpdateHead(ctx, "", func(h *state.Head) error {
		m, changed := decideStage(h, reports, now)
		if !changed {
			return errNoop
		}
		msg, rolledBack = m, h.Stage.State == state.StageRolledBack
		return nil
	})
	switch {
	case err == errNoop:
	case err != nil:
		g.log.Warn().Err(err).Msg("fleet: recording the staged publish's decision failed")
	case rolledBack:
		g.log.Warn().Msg(msg)
	default:
		g.log.Info().Msg(msg)
	}
}
