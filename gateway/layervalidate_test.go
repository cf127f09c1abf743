package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

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
	if s.State != admin.LayerNotApplied || !strings.Contains(s.Error, `upstream "u1": hash_on_header: required when hash_on is header`) {
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
