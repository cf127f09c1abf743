package gateway

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// failingStore is a state.Store whose Load fails.
type failingStore struct{ memStore }

func (*failingStore) Load(context.Context) (*state.Doc, uint64, error) {
	return nil, 0, errors.New("store unreachable")
}

// TestNewFailureStopsTracer: a New that fails after it built the tracer
// stops the tracer's export queue (it stayed running, one goroutine per
// failed New, for the life of the process).
func TestNewFailureStopsTracer(t *testing.T) {
	// A collector address nothing listens on: New does not connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := config.Parse("test.yaml", []byte(`
tracing:
  endpoint: http://`+addr+`
  protocol: http/protobuf
upstreams:
  - {name: u, targets: [{target: "127.0.0.1:1"}]}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := New(cfg, Options{Log: zerolog.Nop(), Store: &failingStore{}, LoadState: true}); err == nil {
			t.Fatal("New succeeded with a store whose Load fails")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := queueGoroutines()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tracing export queues still run after New failed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// queueGoroutines counts the goroutines running the tracing queue's loop.
func queueGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "tracing.(*queue).run(")
}
