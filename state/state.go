// Package state is the admin layer of Outrigger's configuration: what
// operators changed at run time through the admin API, persisted so it
// survives restarts (a state file) or shared by a fleet (Consul KV).
//
// Contract:
//   - A Doc is plain data (JSON). It never holds runtime objects.
//   - The effective configuration is the configuration file with the Doc
//     layered on top (Base, then Merge): the entities of a declarative
//     document posted to the admin API (Doc.Config) replace the file's
//     whole; then an entity present in the Doc replaces the
//     file's entity of the same name whole; a tombstone (Deleted) hides it;
//     entities only in the Doc are added. Weight overrides, canaries,
//     rollouts and manual health marks exist only in the Doc.
//   - A Store persists Docs with compare-and-set on a version, so writers
//     that race (two admin requests, two sidecars of a fleet) never lose an
//     acknowledged change: the loser retries on the new version.
//   - A FleetStore (fleet.go) keeps a gateway group's published versions:
//     immutable, numbered by check-and-set on the group's head,
//     content-hashed; as a Store it serves one sidecar the version its
//     group asks of it.
//   - Nothing here is package-level mutable state.
package state

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/outrigger-gw/outrigger/config"
)

// Doc is the admin layer. The zero value is an empty layer.
type Doc struct {
	// Upstreams are the admin layer's upstreams (config.Upstream: what a
	// stored one leaves out is the file's, see config.Upstream.Resolve).
	Upstreams map[string]*config.Upstream `json:"upstreams,omitempty"`
	Services  map[string]*Service         `json:"services,omitempty"`
	Routes    map[string]*Route           `json:"routes,omitempty"`
	// Overrides adjust target weights per upstream, layered over whatever
	// the targets came from (file, admin, discovery).
	Overrides []Override `json:"overrides,omitempty"`
	// Canaries and Rollouts are keyed by service name.
	Canaries map[string]*Canary  `json:"canaries,omitempty"`
	Rollouts map[string]*Rollout `json:"rollouts,omitempty"`
	// Marks are manual health marks: upstream → target address →
	// "healthy" | "unhealthy".
	Marks map[string]map[string]string `json:"marks,omitempty"`
	// Certificates are keyed by id (certificates have no name).
	Certificates map[string]*Certificate `json:"certificates,omitempty"`
	// Config is the declarative document posted to /config (Kong's
	// DB-less POST /config); nil when none was. Its entities replace the
	// configuration file's (Base), and the rest of the Doc is layered over
	// them as over the file's.
	Config *Declarative `json:"config,omitempty"`
	// Plugins and KeyAuths are keyed by id, Consumers by username (or
	// id); see plugins.go.
	Plugins   map[string]*Plugin   `json:"plugins,omitempty"`
	Consumers map[string]*Consumer `json:"consumers,omitempty"`
	KeyAuths  map[string]*KeyAuth  `json:"keyauth_credentials,omitempty"`
	// SNIs are keyed by name (unique across certificates).
	SNIs map[string]*SNI `json:"snis,omitempty"`
}

// Declarative is a declarative document as posted (YAML or JSON).
type Declarative struct {
	Text string `json:"text"`
	// Hash is Kong's configuration hash of the document (see package
	// admin).
	Hash string `json:"hash,omitempty"`
}

// Meta is what every entity carries, as in Kong (config.Meta: the
// entity types embed it).
type Meta = config.Meta

// Service is an admin-owned service: the configuration's own type, whose
// json tags are the layer's shape (timeouts in milliseconds, as Kong).
type Service = config.Service

// ClientCertificate names the PEM files of a service's client
// certificate.
type ClientCertificate = config.ClientCertificate

// Route is an admin-owned route: the configuration's own type, whose
// json tags are the layer's shape.
type Route = config.Route

// Override sets the weight of the targets of one upstream that match its
// selector: one address, or every target carrying all Tags and Meta
// entries (so a canary instance discovered later inherits it). Weight sets
// each matching target's weight; Share, when set (0..100), instead gives
// the matching targets together that percentage of the upstream's traffic,
// the rest being split among the others by weight.
type Override struct {
	ID       string            `json:"id"`
	Upstream string            `json:"upstream"`
	Target   string            `json:"target,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Weight   *int              `json:"weight,omitempty"`
	Share    *float64          `json:"share,omitempty"`
	// CreatedAt orders overrides: a later one wins for a target that
	// several select.
	CreatedAt int64 `json:"created_at"`
}

// Canary splits a service's traffic between its primary upstream (the
// service's host) and a canary upstream.
type Canary struct {
	Upstream string  `json:"upstream"`
	Percent  float64 `json:"percent"` // 0..100, decimals allowed
	// Force sends a request to the canary regardless of Percent when it
	// carries one of these (header, cookie or query value).
	Force []ForceRule `json:"force,omitempty"`
	// StickyBy assigns users by a hash of this key, so a user sent to the
	// canary stays there as Percent grows: "header:NAME", "cookie:NAME"
	// or "ip". Empty: an exact counter-based split.
	StickyBy  string `json:"sticky_by,omitempty"`
	UpdatedAt int64  `json:"updated_at"`
}

// ForceRule forces the canary when a request input equals Value.
type ForceRule struct {
	Kind  string `json:"kind"` // header | cookie | query
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Rollout is an automatic canary rollout plan and its progress.
type Rollout struct {
	// Steps are canary percents, e.g. [1, 5, 25, 50, 100].
	Steps []float64 `json:"steps"`
	// Interval is how long each step holds before the next one.
	Interval Duration `json:"interval"`
	// Bounds the canary must stay within, relative to the primary,
	// evaluated over the current step once MinRequests canary requests
	// were seen.
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"` // absolute, e.g. 0.01 = +1 point
	MaxP99Ratio          float64 `json:"max_p99_ratio"`           // e.g. 1.5
	MinRequests          int     `json:"min_requests"`
	// Progress.
	State     string `json:"state"`      // running | paused | completed | rolled_back | aborted
	Step      int    `json:"step"`       // index into Steps
	StepSince int64  `json:"step_since"` // Unix seconds; set when a step starts or resumes
	Reason    string `json:"reason,omitempty"`
	UpdatedAt int64  `json:"updated_at"`
}

// UnmarshalJSON reads a Rollout; a step_since written by earlier versions
// in Unix nanoseconds is converted to seconds.
func (r *Rollout) UnmarshalJSON(b []byte) error {
	type plain Rollout
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	// 1e11 seconds is the year 5138; 1e11 nanoseconds is 1970.
	if r.StepSince > 1e11 {
		r.StepSince /= 1e9
	}
	return nil
}

// Rollout states.
const (
	RolloutRunning    = "running"
	RolloutPaused     = "paused"
	RolloutCompleted  = "completed"
	RolloutRolledBack = "rolled_back"
	RolloutAborted    = "aborted"
)

// RolloutStates are every rollout state.
func RolloutStates() []string {
	return []string{RolloutRunning, RolloutPaused, RolloutCompleted, RolloutRolledBack, RolloutAborted}
}

// Duration is a time.Duration that reads and writes as "30s" in JSON (and
// accepts a number of seconds).
type Duration = config.Duration

// Store persists Docs with compare-and-set.
type Store interface {
	// Load returns the stored Doc and its version (0 and an empty Doc
	// when nothing is stored yet).
	Load(ctx context.Context) (*Doc, uint64, error)
	// Save stores doc if the stored version is still prev, and returns the
	// new version; ErrConflict otherwise. It returns only once the Doc is
	// durable.
	Save(ctx context.Context, doc *Doc, prev uint64) (uint64, error)
	// Watch calls fn with every Doc written by someone else (another
	// sidecar of the fleet) until ctx ends. Stores without other writers
	// return at once.
	Watch(ctx context.Context, fn func(*Doc, uint64))
}

// ErrConflict is returned by Save when the stored version moved on.
var ErrConflict = errors.New("state: the stored state changed concurrently")
