package admin

import (
	"context"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Controller is what the admin API steers: the gateway. The admin package
// never touches pickers or upstream internals; every change goes through
// Mutate, which is all or nothing.
type Controller interface {
	// Mutate calls fn with a private copy of the current admin layer. When
	// fn returns nil, the result is validated by building the effective
	// configuration (file + layer), persisted (compare-and-set; on a
	// concurrent change fn is called again on the new layer), and applied.
	// Nothing is applied or persisted when any step fails: fn's own error
	// is returned as is (use *Error for bad input), a build failure as an
	// *Error with status 400, a store failure as a plain error. fn is
	// always handed the latest layer the store holds: while that layer
	// does not build with this gateway's configuration file, Mutate
	// refuses with an *Error of status 409 naming the reason. The admin
	// package never calls the Controller from inside fn, so Mutate may
	// hold its lock while fn runs.
	Mutate(ctx context.Context, fn func(*state.Doc) error) error
	// Layer returns a private copy of the admin layer in force and its
	// revision, for CompareAndSet; while the store's latest layer does not
	// build with this gateway's configuration file it returns Mutate's
	// 409 *Error instead.
	Layer() (*state.Doc, uint64, error)
	// CompareAndSet replaces the admin layer with doc if rev (from Layer)
	// is still the revision in force: validated, persisted and applied as
	// Mutate does. When the layer moved on meanwhile (here or in the
	// store) it returns an error wrapping state.ErrConflict: read Layer
	// again and redo the change. On success it returns the effective
	// configuration doc built to (file + doc), which the caller only reads:
	// an admin change is merged once, by the build, or by the caller when
	// merged is not nil (the build then takes it as it is).
	CompareAndSet(ctx context.Context, rev uint64, doc *state.Doc, merged *Merged) (*config.File, error)
	// Effective returns the effective configuration of the layer at
	// revision rev (from Layer) while that layer is the one in force, as
	// its build merged it (read-only); false when rev moved on or the
	// Controller keeps none (the caller then merges itself).
	Effective(rev uint64) (*config.File, bool)
	// Doc returns a copy of the current admin layer.
	Doc() *state.Doc
	// View returns what Doc does and, read under the same lock, the
	// effective configuration that layer was built to (read-only; nil
	// when the Controller keeps none).
	View() (*state.Doc, *config.File)
	// File returns the configuration file's own entities (before the
	// admin layer), so GET can list file-defined entities and PATCH can
	// start from them.
	File() *config.File
	// Upstream returns the running upstream of that name (nil if none):
	// its Snapshot lists every target with source and effective weight,
	// Health() its checker.
	Upstream(name string) *upstream.Upstream
	// Rollout returns the live evaluation of a service's rollout (rates
	// and p99 of primary and canary over the current step).
	RolloutStatus(service string) (RolloutStatus, bool)
	// ResetState discards the whole admin layer, in the store too (for a
	// fleet: on every sidecar), leaving the configuration file alone. It
	// is the one intentional way to an empty layer, and it works while
	// Mutate refuses changes because the stored layer does not build here.
	ResetState(ctx context.Context) error
}

// Merged is an admin layer's merge that the caller of CompareAndSet has
// already made: Effective is the layer merged (Options.Merge) over Base,
// which is File() with the entities of the layer's declarative document
// (state.Base) when it holds one, else File().
type Merged struct {
	Base, Effective *config.File
}

// RolloutStatus is the measured side of a rollout, for GET: over the
// current step (what the plan's bounds are judged on, and what a rollback
// reason quotes) and over the plan's whole life. Once the rollout stopped
// (completed, rolled back, aborted, paused) the figures are those of that
// moment.
type RolloutStatus struct {
	PrimaryRequestsStep  int64   `json:"primary_requests_step"`
	PrimaryErrorRateStep float64 `json:"primary_error_rate_step"`
	PrimaryP99MsStep     float64 `json:"primary_p99_ms_step"`
	CanaryRequestsStep   int64   `json:"canary_requests_step"`
	CanaryErrorRateStep  float64 `json:"canary_error_rate_step"`
	CanaryP99MsStep      float64 `json:"canary_p99_ms_step"`

	PrimaryRequestsTotal  int64   `json:"primary_requests_total"`
	PrimaryErrorRateTotal float64 `json:"primary_error_rate_total"`
	PrimaryP99MsTotal     float64 `json:"primary_p99_ms_total"`
	CanaryRequestsTotal   int64   `json:"canary_requests_total"`
	CanaryErrorRateTotal  float64 `json:"canary_error_rate_total"`
	CanaryP99MsTotal      float64 `json:"canary_p99_ms_total"`
}

// HealthMark converts the API's words to health marks.
func HealthMark(s string) (health.Mark, error) { return health.ParseMark(s) }
