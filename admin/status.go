package admin

import (
	"net/http"
	"os"
	goruntime "runtime"
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// GET / and GET /status: Kong's fields, then Outrigger's.

func (a *api) root(*http.Request) (int, any, error) {
	s := a.statusNow()
	host, _ := os.Hostname()
	pid := os.Getpid()
	return http.StatusOK, map[string]any{
		"tagline": "Welcome to outrigger", "version": s.Version, "node_id": a.nodeID,
		// Kong's: one process, no database, the bundled plugins.
		"hostname": host, "pids": map[string]any{"master": pid, "workers": []int{pid}},
		"configuration": map[string]any{"database": "off", "role": "traditional"},
		"plugins":       map[string]any{"available_on_server": map[string]any{}, "enabled_in_cluster": []string{}},
		"timers":        map[string]any{"running": 0, "pending": 0},
	}, nil
}

func (a *api) status(*http.Request) (int, any, error) {
	s := a.statusNow()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	total, inFlight := a.requestCounts()
	return http.StatusOK, struct {
		Status
		StartedAt     int64   `json:"started_at"` // Unix seconds, as every timestamp of the API
		UptimeSeconds float64 `json:"uptime_seconds"`
		// Kong's.
		ConfigurationHash string         `json:"configuration_hash"`
		Database          map[string]any `json:"database"`
		Server            map[string]any `json:"server"`
		Memory            map[string]any `json:"memory"`
	}{
		s, s.StartedAt.Unix(), s.Uptime.Seconds(), a.configurationHash(s.ConfigGeneration),
		map[string]any{"reachable": true},
		map[string]any{"total_requests": total, "requests_in_flight": inFlight},
		map[string]any{
			"workers_lua_vms":  []map[string]any{{"pid": os.Getpid(), "http_allocated_gc": mib(ms.HeapAlloc)}},
			"lua_shared_dicts": map[string]any{},
			"go":               map[string]any{"heap_alloc": ms.HeapAlloc, "sys": ms.Sys, "num_gc": ms.NumGC, "goroutines": goruntime.NumGoroutine()},
		},
	}, nil
}

// mib is a byte count as Kong writes memory sizes ("12.34 MiB").
func mib(b uint64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 2, 64) + " MiB"
}

// requestCounts sums the proxy's request counter and in-flight gauge from
// the metrics registry (0 without one).
func (a *api) requestCounts() (total, inFlight float64) {
	if a.o.Metrics == nil {
		return 0, 0
	}
	families, err := a.o.Metrics.Gather()
	if err != nil {
		return 0, 0
	}
	for _, f := range families {
		switch f.GetName() {
		case "outrigger_requests_total":
			total += sum(f.GetMetric(), func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
		case "outrigger_requests_in_flight":
			inFlight += sum(f.GetMetric(), func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
		}
	}
	return total, inFlight
}

func sum(ms []*dto.Metric, v func(*dto.Metric) float64) float64 {
	var t float64
	for _, m := range ms {
		t += v(m)
	}
	return t
}
