// Package discovery defines how Outrigger learns about targets and announces
// the service it sits next to.
//
// Contract (after go-kit's sd package):
//   - A Source watches one service and emits full target sets, never deltas.
//   - An Update with Err set means "the source could not be read": the
//     consumer keeps the last good set (and may expose its age). It is never
//     an empty set.
//   - An Update with Err nil and no Targets is an authoritative empty answer
//     (the service is gone); the consumer applies it after a short grace.
//   - SDK types never leave the sub-packages (discovery/consul,
//     discovery/nacos, discovery/dnssrv, discovery/kubernetes).
package discovery

import (
	"context"
	"strconv"
	"time"
)

// Target is one discovered instance.
type Target struct {
	// Addr is "host:port".
	Addr string
	// Weight is 0..65535 (0 drains).
	Weight int
	Tags   []string
	Meta   map[string]string
	// Priority orders groups of targets (DNS SRV priority; lower first).
	// Consul and Nacos take it from the instance metadata (MetaPriority);
	// Kubernetes leaves it 0.
	Priority int
	// Backup marks a target that takes traffic only when no primary one
	// is healthy (Consul and Nacos: MetaBackup).
	Backup bool
}

// Locality and failover metadata keys of registries without fields of
// their own (Consul service or node meta, Nacos instance metadata).
const (
	// BackupMetaKey: "true" marks a backup target.
	BackupMetaKey = "backup"
	// ZoneMetaKey and RegionMetaKey carry the target's locality; zone is
	// what zone-aware routing reads.
	ZoneMetaKey   = "zone"
	RegionMetaKey = "region"
)

// MetaBackup reports whether meta[BackupMetaKey] is a true boolean
// ("true", "1", as strconv.ParseBool).
func MetaBackup(meta map[string]string) bool {
	b, err := strconv.ParseBool(meta[BackupMetaKey])
	return err == nil && b
}

// WithLocality returns meta with the zone and region of outer added
// where meta has none (a Consul service's meta over its node's); meta
// itself is not modified. nil stays nil when there is nothing to add.
func WithLocality(meta, outer map[string]string) map[string]string {
	var out map[string]string
	for _, k := range []string{ZoneMetaKey, RegionMetaKey} {
		v, ok := outer[k]
		if _, has := meta[k]; has || !ok || v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(meta)+2)
			for mk, mv := range meta {
				out[mk] = mv
			}
		}
		out[k] = v
	}
	if out == nil {
		return meta
	}
	return out
}

// PriorityMetaKey is the instance metadata key that carries a priority
// level in registries without one of their own (Consul, Nacos).
const PriorityMetaKey = "priority"

// MetaPriority is the priority in meta[PriorityMetaKey]: a decimal integer
// 0..65535, else 0.
func MetaPriority(meta map[string]string) int {
	p, err := strconv.Atoi(meta[PriorityMetaKey])
	if err != nil || p < 0 || p > 65535 {
		return 0
	}
	return p
}

// Update is one emission of a Source.
type Update struct {
	Targets []Target
	// Err is set when the source failed; Targets is then meaningless.
	Err error
	// At is when the source produced the update.
	At time.Time
	// Observed is when the source saw the registry change this update
	// reflects: the arrival of the answer, push or event that carried it
	// (for coalesced changes, the earliest of them). The consumer measures
	// registry-to-traffic lag from it. Zero when the source cannot tell;
	// never after At.
	Observed time.Time
}

// Source watches one service.
type Source interface {
	// Name identifies the source in logs, metrics and target listings,
	// e.g. "consul:web" or "dns_srv:_web._tcp.service.consul".
	Name() string
	// Run emits updates to fn until ctx ends. fn is called from one
	// goroutine at a time. Run returns when ctx is done.
	Run(ctx context.Context, fn func(Update))
}

// Registrar announces the local service in a registry.
type Registrar interface {
	// Run registers the service, keeps it registered (re-registering when
	// the registry forgets it) until ctx ends, then deregisters it and
	// returns.
	Run(ctx context.Context) error
}
