// Package demo runs the small echo backends that `outrigger demo` puts
// behind the gateway, so a first run shows load balancing with no other
// setup. Each backend answers every request with a JSON description of the
// request it received, in the spirit of httpbin's /anything.
package demo

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// Backend is one running demo backend.
type Backend struct {
	Name string
	Addr string
	srv  *http.Server
	ln   net.Listener
}

// Start listens on addr ("127.0.0.1:0" for a kernel-chosen port) and serves
// until Close.
func Start(name, addr string) (*Backend, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Backend{Name: name, Addr: ln.Addr().String(), ln: ln}
	b.srv = &http.Server{Handler: Handler(name), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// Close stops the backend.
func (b *Backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return b.srv.Shutdown(ctx)
}

// Reply is the body every demo backend answers with.
type Reply struct {
	Backend string            `json:"backend"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query,omitempty"`
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
}

// Handler is the demo backend's handler; /health answers 200.
func Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"Host": r.Host}
		for k, v := range r.Header {
			if len(v) > 0 {
				h[k] = v[0]
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Demo-Backend", name)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Reply{Backend: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: h})
	})
}
