// Package admin serves Outrigger's admin listener: status, Prometheus
// metrics and (in later versions) the Kong-compatible admin API.
//
// Contract: the admin package reads effective state through the functions
// it is given and never mutates a picker directly. Every error is JSON:
// {"message": ...}.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Status is the body of GET /status.
type Status struct {
	Version          string        `json:"version"`
	StartedAt        time.Time     `json:"started_at"`
	Uptime           time.Duration `json:"-"`
	ConfigGeneration uint64        `json:"config_generation"`
	ConfigFile       string        `json:"config_file,omitempty"`
	Upstreams        int           `json:"upstreams"`
	Services         int           `json:"services"`
	Routes           int           `json:"routes"`
}

// Options configure the admin handler.
type Options struct {
	// Status returns the current status; required.
	Status func() Status
	// Ready answers /ready (readiness probes); nil means always ready.
	Ready func() (bool, string)
	// Metrics is gathered for /metrics; required.
	Metrics prometheus.Gatherer
	Log     zerolog.Logger
}

// New returns the admin handler.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s := o.Status()
		writeJSON(w, http.StatusOK, struct {
			Status
			UptimeSeconds float64 `json:"uptime_seconds"`
		}{s, s.Uptime.Seconds()})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ok, why := true, "ready"
		if o.Ready != nil {
			ok, why = o.Ready()
		}
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"ready": ok, "message": why})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "alive"})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := o.Status()
		writeJSON(w, http.StatusOK, map[string]any{"tagline": "Welcome to outrigger", "version": s.Version})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is a client error answered as JSON {"message", "fields"} with
// Status (400 when zero).
type Error struct {
	Status  int               `json:"-"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func (e *Error) Error() string { return e.Message }
