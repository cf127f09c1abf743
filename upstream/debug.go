package upstream

import (
	"maps"
	"time"

	"github.com/outrigger-gw/outrigger/health"
)

// Debug is what an upstream believes now, as the admin API's debug view
// shows it: every known target of the current snapshot with its runtime
// state. It is read from the snapshot, the balancer statistics (atomics)
// and the health checker's published statuses: it takes no lock the
// request path takes.
type Debug struct {
	// Generation is the snapshot's.
	Generation uint64 `json:"snapshot_generation"`
	// Sources are the discovery sources' generations (see
	// Snapshot.SourceGenerations).
	Sources        map[string]uint64 `json:"discovery_generations"`
	Panic          bool              `json:"panic"`
	HealthyPercent float64           `json:"healthy_percent"`
	// Levels are the priority levels with their loads (Snapshot.Levels).
	Levels  []Level       `json:"levels"`
	Targets []DebugTarget `json:"targets"`
}

// DebugTarget is one target in Debug.
type DebugTarget struct {
	Target string `json:"target"`
	Source string `json:"source"`
	// Weight is the source's; EffectiveWeight what the balancer uses
	// (after override, slow start, shares, health and priority).
	Weight          int    `json:"weight"`
	EffectiveWeight int    `json:"effective_weight"`
	Override        string `json:"override,omitempty"`
	// Eligible reports that the target is in the picker.
	Eligible  bool              `json:"eligible"`
	Priority  int               `json:"priority"`
	Locality  map[string]string `json:"locality"`
	Tags      []string          `json:"tags"`
	Meta      map[string]string `json:"meta"`
	Health    DebugHealth       `json:"health"`
	SlowStart *DebugSlowStart   `json:"slow_start"`
	InFlight  int64             `json:"in_flight"`
	Requests  uint64            `json:"requests"`
	// LatencyEWMAMs is the peak latency EWMA in milliseconds; null before
	// the first observed request.
	LatencyEWMAMs *float64 `json:"latency_ewma_ms"`
}

// DebugHealth is a target's health: the effective verdict, why and since
// when, and the passive ejection state.
type DebugHealth struct {
	Healthy      bool       `json:"healthy"`
	Reason       string     `json:"reason"`
	Since        *time.Time `json:"since"`
	Checks       bool       `json:"checks_healthy"`
	Mark         string     `json:"mark"`
	Ejected      bool       `json:"ejected"`
	Ejections    int        `json:"ejections"`
	EjectedUntil *time.Time `json:"ejected_until"`
	// SuccessRate is the last success-rate sample; nil without one.
	SuccessRate *health.RateSample `json:"success_rate,omitempty"`
}

// DebugSlowStart is a ramp in progress.
type DebugSlowStart struct {
	Since time.Time `json:"since"`
	// Factor is the share of its weight the target gets (0..1) as of the
	// snapshot.
	Factor float64 `json:"factor"`
}

// Debug returns the upstream's debug view.
func (u *Upstream) Debug() Debug {
	s := u.Snapshot()
	d := Debug{Generation: s.Generation, Sources: maps.Clone(s.SourceGenerations), Panic: s.Panic, HealthyPercent: s.HealthyPercent,
		Targets: make([]DebugTarget, 0, len(s.Targets)), Levels: make([]Level, len(s.Levels))}
	for i, l := range s.Levels {
		l.Zones = maps.Clone(l.Zones)
		d.Levels[i] = l
	}
	if d.Sources == nil {
		d.Sources = map[string]uint64{}
	}
	inPicker := make(map[string]bool, len(s.Endpoints))
	for i := range s.Endpoints {
		inPicker[s.Endpoints[i].Addr] = true
	}
	for i := range s.Targets {
		ts := &s.Targets[i]
		t := DebugTarget{Target: ts.Addr, Source: ts.Source, Weight: ts.ConfiguredWeight, EffectiveWeight: ts.EffectiveWeight,
			Override: ts.Override, Eligible: inPicker[ts.Addr], Priority: ts.Priority, Locality: map[string]string{},
			Tags: ts.Tags, Meta: ts.Meta, Health: DebugHealth{Healthy: ts.Healthy, Reason: health.CauseInitial.String(), Checks: ts.Healthy, Mark: health.MarkNone.String()}}
		if t.Tags == nil {
			t.Tags = []string{}
		}
		if t.Meta == nil {
			t.Meta = map[string]string{}
		}
		// Locality: the metadata discovery sources set (Kubernetes "zone"
		// and "nodeName", for instance).
		for _, k := range [...]string{"region", "zone", "nodeName", "node"} {
			if v, ok := ts.Meta[k]; ok {
				t.Locality[k] = v
			}
		}
		if u.health != nil {
			if st, ok := u.health.Status(ts.Addr); ok {
				t.Health = DebugHealth{Healthy: st.Healthy, Reason: st.Cause.String(), Since: timePtr(st.Since), Checks: st.Checks,
					Mark: st.Mark.String(), Ejected: st.Ejected, Ejections: st.Ejections, EjectedUntil: timePtr(st.EjectedUntil),
					SuccessRate: u.health.RateSample(ts.Addr)}
			}
		}
		if !ts.RampingSince.IsZero() {
			t.SlowStart = &DebugSlowStart{Since: ts.RampingSince, Factor: ts.SlowStartFactor}
		}
		if st := ts.Stats; st != nil {
			t.InFlight, t.Requests = st.InFlight.Load(), st.Requests.Load()
			if e, ok := st.LatencyEWMA(); ok {
				ms := float64(e) / float64(time.Millisecond)
				t.LatencyEWMAMs = &ms
			}
		}
		d.Targets = append(d.Targets, t)
	}
	return d
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
