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
	// Doc returns a copy of the current admin layer.
	Doc() *state.Doc
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

// RolloutStatus is the measured side of a rollout, for GET.
type RolloutStatus struct {
	PrimaryRequests  int64   `json:"primary_requests"`
	PrimaryErrorRate float64 `json:"primary_error_rate"`
	PrimaryP99Ms     float64 `json:"primary_p99_ms"`
	CanaryRequests   int64   `json:"canary_requests"`
	CanaryErrorRate  float64 `json:"canary_error_rate"`
	CanaryP99Ms      float64 `json:"canary_p99_ms"`
}

// HealthMark converts the API's words to health marks.
func HealthMark(s string) (health.Mark, error) { return health.ParseMark(s) }
