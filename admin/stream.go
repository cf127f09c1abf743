package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/outrigger-gw/outrigger/config"
)

// DefaultMaxStreams bounds the concurrent GET /stats/stream clients when
// Options.MaxStreams is 0.
const DefaultMaxStreams = 8

// streamInterval is the time between two frames of GET /stats/stream;
// streamWriteTimeout bounds the write of one.
const (
	streamInterval     = time.Second
	streamWriteTimeout = 10 * time.Second
)

// statsFrame is one frame of GET /stats/stream: cumulative counters, so a
// client computes rates and percentiles over any window by differencing
// two frames (a counter that went down was reset: its series restarted).
type statsFrame struct {
	// Time is when the frame was read, in Unix milliseconds.
	Time int64 `json:"time"`
	// LatencyBuckets are the upper bounds (seconds) of Traffic's Buckets;
	// a last bucket counts everything (+Inf).
	LatencyBuckets []float64       `json:"latency_buckets"`
	Upstreams      []streamUp      `json:"upstreams"`
	Traffic        []streamTraffic `json:"traffic"`
}

// streamUp is an upstream's part of a frame.
type streamUp struct {
	Name string `json:"name"`
	// Sources are the kinds the upstream's targets come from: static,
	// consul, nacos, dns, kubernetes.
	Sources   []string       `json:"sources"`
	Targets   []streamTarget `json:"targets"`
	Discovery []streamDisc   `json:"discovery"`
}

// streamTarget is one target's counters and state.
type streamTarget struct {
	Target          string `json:"target"`
	Source          string `json:"source"`
	Weight          int    `json:"weight"`
	EffectiveWeight int    `json:"effective_weight"`
	Eligible        bool   `json:"eligible"`
	Healthy         bool   `json:"healthy"`
	Reason          string `json:"reason"`
	Mark            string `json:"mark"`
	InFlight        int64  `json:"in_flight"`
	// Responses and Errors (5xx) are the proxy's finished requests to the
	// target (outrigger_requests_total), over every route and service.
	Responses     uint64   `json:"responses"`
	Errors        uint64   `json:"errors"`
	LatencyEWMAMs *float64 `json:"latency_ewma_ms"`
}

// streamDisc is a discovery source's freshness.
type streamDisc struct {
	Source string `json:"source"`
	// AgeSeconds is the time since the source last answered; Staleness
	// how long it has been failing to confirm its targets (0 while its
	// watch answers).
	AgeSeconds       *float64 `json:"age_seconds"`
	StalenessSeconds *float64 `json:"staleness_seconds"`
}

// streamTraffic is the traffic of one (service, upstream) pair, over
// every route of the service.
type streamTraffic struct {
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Buckets are cumulative counts per LatencyBuckets bound, +Inf last.
	Buckets []uint64 `json:"buckets"`
}

// streamStats serves GET /stats/stream: server-sent events, one "stats"
// frame a second (the first at once), until the client leaves, the
// listener shuts down (Options.Done) or ?frames=N frames were sent. At
// most Options.MaxStreams clients at once; more are refused with 503.
func (a *api) streamStats(w http.ResponseWriter, r *http.Request) {
	if a.ctl == nil {
		writeJSON(w, http.StatusServiceUnavailable, &Error{Message: "the admin API has no controller"})
		return
	}
	limit := -1
	for k, v := range r.URL.Query() {
		n, err := strconv.Atoi(v[0])
		if k != "frames" || len(v) != 1 || err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, &Error{Message: "invalid option", Fields: map[string]string{k: "expected frames=N, a positive integer"}})
			return
		}
		limit = n
	}
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, &Error{Message: fmt.Sprintf("too many stats streams (at most %d at once)", cap(a.streams))})
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	for sent := 0; limit < 0 || sent < limit; sent++ {
		if sent > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-a.o.Done:
				return
			case <-tick.C:
			}
		}
		data, err := json.Marshal(a.statsFrame())
		if err != nil {
			return
		}
		// A client that stops reading gives its slot up instead of
		// holding it (net/http clears the deadline after the request; a
		// recorder without deadlines streams on).
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: stats\ndata: %s\n\n", data); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// statsFrame reads one frame: the upstreams' live snapshots (atomics, no
// lock of the request path) and the metrics registry.
func (a *api) statsFrame() statsFrame {
	f := statsFrame{Time: a.now().UnixMilli(), Upstreams: []streamUp{}, Traffic: []streamTraffic{}, LatencyBuckets: []float64{}}
	type key struct{ upstream, target string }
	responses, errors := map[key]uint64{}, map[key]uint64{}
	type skey struct{ service, upstream string }
	traffic := map[skey]*streamTraffic{}
	var order []skey
	// trafficOf is sk's entry, added in the order first seen.
	trafficOf := func(sk skey) *streamTraffic {
		t := traffic[sk]
		if t == nil {
			t = &streamTraffic{Service: sk.service, Upstream: sk.upstream}
			traffic[sk] = t
			order = append(order, sk)
		}
		return t
	}
	age, stale := map[[2]string]float64{}, map[[2]string]float64{}
	if a.o.Metrics != nil {
		fams, _ := a.o.Metrics.Gather() // a partial gather still serves what it has
		for _, mf := range fams {
			switch mf.GetName() {
			case "outrigger_requests_total":
				for _, m := range mf.GetMetric() {
					l := labels(m)
					n := uint64(m.GetCounter().GetValue())
					k := key{l["upstream"], l["target"]}
					responses[k] += n
					t := trafficOf(skey{l["service"], l["upstream"]})
					t.Requests += n
					if l["code"] == "5xx" {
						errors[k] += n
						t.Errors += n
					}
				}
			case "outrigger_request_duration_seconds":
				for _, m := range mf.GetMetric() {
					l := labels(m)
					h := m.GetHistogram()
					bs := h.GetBucket()
					if len(f.LatencyBuckets) == 0 {
						for _, b := range bs {
							f.LatencyBuckets = append(f.LatencyBuckets, b.GetUpperBound())
						}
					}
					t := trafficOf(skey{l["service"], l["upstream"]})
					if t.Buckets == nil {
						t.Buckets = make([]uint64, len(bs)+1)
					}
					for i, b := range bs {
						if i < len(t.Buckets)-1 {
							t.Buckets[i] += b.GetCumulativeCount()
						}
					}
					t.Buckets[len(t.Buckets)-1] += h.GetSampleCount()
				}
			case "outrigger_discovery_last_success_age_seconds":
				for _, m := range mf.GetMetric() {
					l := labels(m)
					age[[2]string{l["upstream"], l["source"]}] = m.GetGauge().GetValue()
				}
			case "outrigger_discovery_staleness_seconds":
				for _, m := range mf.GetMetric() {
					l := labels(m)
					stale[[2]string{l["upstream"], l["source_kind"]}] = m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, sk := range order {
		t := traffic[sk]
		if t.Buckets == nil {
			t.Buckets = []uint64{}
		}
		f.Traffic = append(f.Traffic, *t)
	}
	w := a.view()
	for i := range w.eff.Upstreams {
		cu := &w.eff.Upstreams[i]
		su := streamUp{Name: cu.Name, Sources: upstreamSources(cu), Targets: []streamTarget{}, Discovery: []streamDisc{}}
		if u := a.ctl.Upstream(cu.Name); u != nil {
			for _, dt := range u.Debug().Targets {
				k := key{cu.Name, dt.Target}
				su.Targets = append(su.Targets, streamTarget{Target: dt.Target, Source: dt.Source, Weight: dt.Weight,
					EffectiveWeight: dt.EffectiveWeight, Eligible: dt.Eligible, Healthy: dt.Health.Healthy, Reason: dt.Health.Reason,
					Mark: dt.Health.Mark, InFlight: dt.InFlight, Responses: responses[k], Errors: errors[k], LatencyEWMAMs: dt.LatencyEWMAMs})
			}
		}
		for k, v := range age {
			if k[0] != cu.Name {
				continue
			}
			d := streamDisc{Source: k[1], AgeSeconds: ptr(v)}
			kind, _, _ := strings.Cut(k[1], ":")
			if s, ok := stale[[2]string{cu.Name, kind}]; ok {
				d.StalenessSeconds = ptr(s)
			}
			su.Discovery = append(su.Discovery, d)
		}
		slices.SortFunc(su.Discovery, func(x, y streamDisc) int { return strings.Compare(x.Source, y.Source) })
		f.Upstreams = append(f.Upstreams, su)
	}
	return f
}

// upstreamSources lists the kinds an upstream's targets come from.
func upstreamSources(u *config.Upstream) []string {
	out := []string{}
	if len(u.Targets) > 0 || u.Discovery == nil {
		out = append(out, "static")
	}
	if d := u.Discovery; d != nil {
		if d.Consul != nil {
			out = append(out, "consul")
		}
		if d.Nacos != nil {
			out = append(out, "nacos")
		}
		if d.DNSSRV != nil {
			out = append(out, "dns")
		}
		if d.Kubernetes != nil {
			out = append(out, "kubernetes")
		}
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
