package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// TestNewRefusesALayerThatFailsValidate: a stored layer is checked by the
// entities' Validate when it is loaded, so a service the admin API would
// refuse does not start the gateway.
func TestNewRefusesALayerThatFailsValidate(t *testing.T) {
	yes := true
	st := &memStore{version: 1, doc: &state.Doc{Services: map[string]*state.Service{
		"plain": {Name: "plain", Protocol: "http", Host: "127.0.0.1", Port: 7003, Retries: 1,
			ConnectTimeout: 1e9, ReadTimeout: 1e9, WriteTimeout: 1e9, TLSVerify: &yes},
	}}}
	_, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop(), Store: st, LoadState: true})
	if err == nil || !strings.Contains(err.Error(), "services.plain.tls_verify: only allowed when protocol is https or grpcs") {
		t.Fatalf("New = %v", err)
	}
	st.doc.Services["plain"].TLSVerify = nil
	if _, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop(), Store: st, LoadState: true}); err != nil {
		t.Fatal(err)
	}
}

// TestStoreAdoptionOfAnInvalidUpstream: a stored layer whose upstream
// has settings that do not fit together (config.Upstream.Validate) does
// not apply, as a layer that does not build: the running configuration
// stays and the problem is shown with its field.
func TestStoreAdoptionOfAnInvalidUpstream(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	g := storeGateway(t, st)
	bad := &state.Doc{Upstreams: map[string]*config.Upstream{"u1": {Name: "u1", Algorithm: "consistent-hashing", HashOn: "header",
		Targets: []config.Target{{Target: "127.0.0.1:7001", Weight: 100}}}}}
	g.remoteChange(ctx, bad, st.put(bad))
	s := g.Status().AdminLayer
	if s.State != admin.LayerNotApplied || !strings.Contains(s.Error, "upstreams.u1.hash_on_header: required when hash_on is header") {
		t.Fatalf("admin layer %+v, want not_applied for u1's hash_on_header", s)
	}
	g.mu.Lock()
	cfg := g.cfg
	g.mu.Unlock()
	if u, _ := cfg.Upstream("u1"); u.Algorithm != config.DefaultAlgorithm {
		t.Errorf("running u1 = %+v, want the file's", u)
	}
	good := &state.Doc{Upstreams: map[string]*config.Upstream{"u1": {Name: "u1", Algorithm: "consistent-hashing", HashOn: "header",
		HashOnHeader: "X-User", Targets: []config.Target{{Target: "127.0.0.1:7001", Weight: 100}}}}}
	v := st.put(good)
	g.remoteChange(ctx, good, v)
	if s := g.Status().AdminLayer; s.State != admin.LayerInSync || s.Version != v {
		t.Fatalf("after a good layer: %+v, want in sync at %d", s, v)
	}
}
