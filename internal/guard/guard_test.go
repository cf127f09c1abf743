package guard

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// counted reads a counter through a registry.
func counted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// Wrap over a real server: a panic before anything was written is answered
// 500 with the listener's body (the handler's half-set headers dropped);
// one after the first byte aborts the connection; both are logged at error
// level with the stack and counted. http.ErrAbortHandler aborts silently.
// The server keeps serving after each.
func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		h      http.HandlerFunc
		status int // 0: aborted
		counts float64
	}{
		{desc: "before writing", status: 500, counts: 1, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			panic("boom")
		}},
		{desc: "after writing", counts: 1, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "partial")
			panic("boom")
		}},
		{desc: "http.ErrAbortHandler", h: func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "panics_total"})
			reg.MustRegister(c)
			var logs syncBuffer
			g := &Guard{Listener: "test", Log: zerolog.New(&logs), Panics: c, Answer: func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `{"message":"oops"}`)
			}}
			mux := http.NewServeMux()
			mux.Handle("/panic", tc.h)
			mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			srv := httptest.NewServer(g.Wrap(mux))
			defer srv.Close()
			cl := &http.Client{Timeout: 10 * time.Second}
			resp, err := cl.Get(srv.URL + "/panic")
			if tc.status == 0 {
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatal("a complete answer; want the connection aborted")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || string(b) != `{"message":"oops"}` || resp.Header.Get("Content-Encoding") != "" {
					t.Fatalf("%d %q %v", resp.StatusCode, b, resp.Header)
				}
			}
			resp, err = cl.Get(srv.URL + "/ok")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("next request: %d", resp.StatusCode)
			}
			if got := counted(t, reg); got != tc.counts {
				t.Errorf("counted %v, want %v", got, tc.counts)
			}
			out := strings.TrimSpace(logs.String())
			if tc.counts == 0 {
				if out != "" {
					t.Errorf("logged %s", out)
				}
				return
			}
			var l map[string]any
			if err := json.Unmarshal([]byte(out), &l); err != nil {
				t.Fatalf("one JSON line expected: %q", out)
			}
			if st, _ := l["stack"].(string); l["level"] != "error" || l["panic"] != "boom" || l["listener"] != "test" ||
				l["response_started"] != (tc.status == 0) || !strings.Contains(st, "guard_test.go") {
				t.Errorf("log line %v", l)
			}
		})
	}
}
