// Package guard is the one rule for a panic while serving an HTTP request,
// on every listener (proxy and admin):
//
//   - the panic is logged at error level with its value and stack, and
//     counted (outrigger_panics_total{listener});
//   - when nothing of the response was written yet, the client gets a 500
//     with the listener's JSON error body (stale headers the handler had
//     set are dropped first); otherwise the connection is aborted, so a
//     partial response never looks complete;
//   - http.ErrAbortHandler keeps its meaning: it aborts the connection
//     silently, neither logged nor counted;
//   - the process keeps serving (net/http's per-connection recovery only
//     ever sees http.ErrAbortHandler).
package guard

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Guard applies the rule for one listener. Its fields are set before use
// and never changed; it is then safe for concurrent use.
type Guard struct {
	// Listener names the listener in the log line ("proxy", "admin").
	Listener string
	Log      zerolog.Logger
	// Panics counts recovered panics; nil counts nothing.
	Panics prometheus.Counter
	// Answer writes the listener's 500 (status, headers and JSON body).
	Answer func(http.ResponseWriter)
}

// Recovered applies the rule to v, the non-nil value recover returned in
// a deferred function of the handler serving r; started reports whether
// any of the response was written (or the connection taken over). When it
// returns true the caller must, once its own bookkeeping is done,
// panic(http.ErrAbortHandler) to abort the connection; otherwise the 500
// has been written to w.
func (g *Guard) Recovered(v any, w http.ResponseWriter, r *http.Request, started bool) (abort bool) {
	if v == http.ErrAbortHandler {
		return true
	}
	g.Report(v, r.Method, r.Host, r.URL.Path, r.RemoteAddr, started)
	if started {
		return true
	}
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	g.Answer(w)
	return false
}

// Report logs and counts v, a recovered panic other than
// http.ErrAbortHandler, of the request described by the other arguments;
// started reports whether any of its response was written. It is the
// part of the rule for servers that do not speak through net/http (the
// proxy's own HTTP/1.1 engine), which answer or abort themselves.
func (g *Guard) Report(v any, method, host, path, client string, started bool) {
	if g.Panics != nil {
		g.Panics.Inc()
	}
	g.Log.Error().Str("listener", g.Listener).Str("method", method).Str("host", host).
		Str("path", path).Str("client", client).Str("panic", fmt.Sprint(v)).
		Bool("response_started", started).Str("stack", string(debug.Stack())).
		Msg("panic serving a request")
}

// Wrap returns h served under the rule.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil && g.Recovered(v, w, r, tw.started) {
				panic(http.ErrAbortHandler)
			}
		}()
		h.ServeHTTP(tw, r)
	})
}

// trackingWriter records whether the response was started; Unwrap lets
// http.ResponseController reach the real writer. Owned by one request.
type trackingWriter struct {
	http.ResponseWriter
	started bool
}

func (w *trackingWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.started = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Unwrap() http.ResponseWriter {
	// The caller may flush or hijack behind our back: from here on a
	// panic aborts rather than answer.
	w.started = true
	return w.ResponseWriter
}
