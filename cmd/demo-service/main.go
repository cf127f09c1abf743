// Command demo-service is the small HTTP service that Outrigger's container
// examples (deployments/compose, deployments/k8s) and end-to-end tests
// (itest/e2e) put beside a sidecar.
//
// Every answer is JSON naming the service and the instance that served it
// (also in the X-Instance header), so a caller can count where its requests
// went. The echo reads the whole request body before it answers and reports
// its length (body_bytes), so a caller streaming a body holds its request
// in flight for as long as it likes. GET /health answers 200 until told otherwise with
// POST /admin/health?status=500 (any status 200..599; status=200 restores
// it). On SIGTERM or SIGINT it goes lame duck: /health answers 503 while
// every other request is still served for --shutdown-delay, so a sidecar
// probing /health takes the instance out of discovery before the listener
// closes; then it drains in-flight requests and exits 0.
//
// Flags fall back to environment variables: --name DEMO_NAME,
// --instance DEMO_INSTANCE (default: the host name), --listen DEMO_LISTEN,
// --shutdown-delay DEMO_SHUTDOWN_DELAY.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// drainTimeout bounds the graceful shutdown after the lame-duck delay.
const drainTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stderr))
}

// options are the command line, after environment defaults.
type options struct {
	name, instance, listen string
	shutdownDelay          time.Duration
}

// parse reads flags, taking defaults from the environment.
func parse(args []string, env func(string) (string, bool), stderr io.Writer) (options, error) {
	get := func(k, def string) string {
		if v, ok := env(k); ok && v != "" {
			return v
		}
		return def
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "demo"
	}
	delay, err := time.ParseDuration(get("DEMO_SHUTDOWN_DELAY", "0s"))
	if err != nil {
		return options{}, fmt.Errorf("DEMO_SHUTDOWN_DELAY: %v", err)
	}
	var o options
	fs := flag.NewFlagSet("demo-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.name, "name", get("DEMO_NAME", "demo"), "service name reported in every answer (env DEMO_NAME)")
	fs.StringVar(&o.instance, "instance", get("DEMO_INSTANCE", host), "instance id reported in every answer (env DEMO_INSTANCE)")
	fs.StringVar(&o.listen, "listen", get("DEMO_LISTEN", ":9000"), "listen address host:port (env DEMO_LISTEN)")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", delay, "lame-duck time after SIGTERM: /health fails, requests are still served (env DEMO_SHUTDOWN_DELAY)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.shutdownDelay < 0 {
		return options{}, errors.New("--shutdown-delay must not be negative")
	}
	return o, nil
}

// run serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, env func(string) (string, bool), stderr io.Writer) int {
	o, err := parse(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo-service:", err)
		return 2
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintln(stderr, "demo-service:", err)
		return 1
	}
	svc := newService(o.name, o.instance)
	fmt.Fprintf(stderr, "demo-service: %s/%s listening on %s\n", o.name, o.instance, ln.Addr())
	if err := serve(ctx, ln, svc, o.shutdownDelay, stderr); err != nil {
		fmt.Fprintln(stderr, "demo-service:", err)
		return 1
	}
	fmt.Fprintln(stderr, "demo-service: stopped")
	return 0
}

// serve runs svc on ln until ctx ends, then goes lame duck for delay and
// drains.
func serve(ctx context.Context, ln net.Listener, svc *service, delay time.Duration, logw io.Writer) error {
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	svc.draining.Store(true)
	if delay > 0 {
		fmt.Fprintf(logw, "demo-service: lame duck for %s (/health answers 503)\n", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// service is the HTTP handler: the echo, /health and /admin/health.
type service struct {
	name, instance string
	// health is the status /health answers while not draining.
	health   atomic.Int32
	draining atomic.Bool
	mux      *http.ServeMux
}

// Reply is the body of every echo answer.
type Reply struct {
	Service  string            `json:"service"`
	Instance string            `json:"instance"`
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query,omitempty"`
	Host     string            `json:"host"`
	Headers  map[string]string `json:"headers"`
	// BodyBytes is the length of the request body, read to its end.
	BodyBytes int64 `json:"body_bytes"`
}

func newService(name, instance string) *service {
	s := &service{name: name, instance: instance, mux: http.NewServeMux()}
	s.health.Store(http.StatusOK)
	s.mux.HandleFunc("GET /health", s.serveHealth)
	s.mux.HandleFunc("POST /admin/health", s.setHealth)
	s.mux.HandleFunc("/admin/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		s.writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "use POST /admin/health?status=NNN"})
	})
	s.mux.HandleFunc("/", s.echo)
	return s
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance", s.instance)
	s.mux.ServeHTTP(w, r)
}

func (s *service) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		s.writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining", "instance": s.instance})
		return
	}
	code := int(s.health.Load())
	state := "ok"
	if code >= 300 {
		state = "failing"
	}
	s.writeJSON(w, code, map[string]any{"status": state, "instance": s.instance})
}

func (s *service) setHealth(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Query().Get("status"))
	if err != nil || code < 200 || code > 599 {
		s.writeJSON(w, http.StatusBadRequest, map[string]string{"message": "status must be an HTTP status 200..599"})
		return
	}
	s.health.Store(int32(code))
	s.writeJSON(w, http.StatusOK, map[string]any{"health_status": code, "instance": s.instance})
}

func (s *service) echo(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		s.writeJSON(w, http.StatusBadRequest, map[string]string{"message": "reading the request body: " + err.Error()})
		return
	}
	h := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if len(v) > 0 {
			h[k] = v[0]
		}
	}
	s.writeJSON(w, http.StatusOK, Reply{
		Service: s.name, Instance: s.instance, Method: r.Method, Path: r.URL.Path,
		Query: r.URL.RawQuery, Host: r.Host, Headers: h, BodyBytes: n,
	})
}

func (s *service) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
