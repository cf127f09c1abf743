package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// groupGateway serves a gateway of group A (draft mode) until the test
// ends.
func groupGateway(t *testing.T, consul, prefix, id string) *Gateway {
	t.Helper()
	return groupGatewayOf(t, consul, prefix, id, "A", false)
}

// groupGatewayOf serves a gateway of group with fleet.auto_publish auto
// until the test ends.
func groupGatewayOf(t *testing.T, consul, prefix, id, group string, auto bool) *Gateway {
	t.Helper()
	src := fmt.Sprintf(`admin:
  listen: 127.0.0.1:0
  store: consul
  consul: {address: %s}
upstreams:
  - {name: primary, targets: [{target: 127.0.0.1:7001}]}
services:
  - {name: s, host: primary, routes: [{name: rs, paths: [/s]}]}
fleet: {group: %s, id: %s, prefix: %s, auto_publish: %t, report_interval: 1s}
`, consul, group, id, prefix, auto)
	cfg, err := config.Parse("group.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Log: zerolog.Nop(), LoadState: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, pln, aln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return g
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGroupDraftPublishAndReports: draft edits apply nowhere; a publish
// reaches both sidecars, whose reports show it; the draft's rollouts are
// not run. Under -race this covers the watch, reporter and stage loops
// beside admin writes.
func TestGroupDraftPublishAndReports(t *testing.T) {
	ag := consultest.Start(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	g1, g2 := groupGateway(t, ag.HTTPAddr, prefix, "g1"), groupGateway(t, ag.HTTPAddr, prefix, "g2")
	runs := func(want uint64) func() bool {
		return func() bool {
			st, err := g1.FleetStatus(ctx, "")
			if err != nil || len(st.Sidecars) != 2 {
				return false
			}
			for _, s := range st.Sidecars {
				if s.Version != want || s.Drift {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "both reports at version 0", runs(0))
	for i := range 5 {
		if err := g1.Mutate(ctx, func(d *state.Doc) error {
			if d.Routes == nil {
				d.Routes = map[string]*state.Route{}
			}
			name := fmt.Sprint("r", i)
			d.Routes[name] = &state.Route{Name: name, Service: "s", Paths: []string{"/" + name}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(g1.Doc().Routes) != 0 || len(g2.Doc().Routes) != 0 {
		t.Fatal("draft edits are in force")
	}
	v, err := g2.FleetPublish(ctx, admin.FleetPublish{Author: "t", Message: "five routes"})
	if err != nil || v.Number != 1 {
		t.Fatalf("publish: %+v %v", v, err)
	}
	waitUntil(t, "both at version 1", runs(1))
	if len(g1.Doc().Routes) != 5 || len(g2.Doc().Routes) != 5 {
		t.Fatalf("routes in force: %d, %d", len(g1.Doc().Routes), len(g2.Doc().Routes))
	}
	// Staged on g1, rolled back by hand.
	if err := g2.Mutate(ctx, func(d *state.Doc) error { delete(d.Routes, "r0"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := g2.FleetPublish(ctx, admin.FleetPublish{Message: "drop r0", Stage: &state.Stage{Sidecars: []string{"g1"}, Interval: state.Duration(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "g1 on the staged version", func() bool { _, ok := g1.Doc().Routes["r0"]; return !ok })
	if _, ok := g2.Doc().Routes["r0"]; !ok {
		t.Fatal("g2 outside the stage runs it")
	}
	h, _, err := g2.FleetRollback(ctx, admin.FleetRollback{Author: "t", Message: "no"})
	if err != nil || h.Stage.State != state.StageRolledBack || h.Stage.Reason != "rolled back by t: no" {
		t.Fatalf("stage rollback: %+v %v", h, err)
	}
	waitUntil(t, "g1 back on version 1", func() bool { _, ok := g1.Doc().Routes["r0"]; return ok })
	waitUntil(t, "both at version 1 again", runs(1))
}

// TestFleetStatusOfAnotherGroupShowsItsMode: GET /fleet?group=B from a
// sidecar of group A says whether B auto-publishes, from B's sidecars'
// reports (it said false for every other group).
func TestFleetStatusOfAnotherGroupShowsItsMode(t *testing.T) {
	ag := consultest.Start(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	a := groupGatewayOf(t, ag.HTTPAddr, prefix, "a1", "A", false)
	b := groupGatewayOf(t, ag.HTTPAddr, prefix, "b1", "B", true)
	for _, c := range []struct {
		from  *Gateway
		group string
		auto  bool
	}{{a, "B", true}, {a, "A", false}, {b, "A", false}, {b, "B", true}, {a, "", false}, {b, "", true}} {
		var st admin.FleetStatus
		waitUntil(t, "a report of group "+c.group, func() bool {
			var err error
			st, err = c.from.FleetStatus(ctx, c.group)
			return err == nil && len(st.Sidecars) == 1
		})
		if st.AutoPublish != c.auto {
			t.Errorf("FleetStatus(%q) from %s: auto_publish %v, want %v", c.group, st.ID, st.AutoPublish, c.auto)
		}
	}
}

// TestDraftChangeMergesOnce: in draft mode an admin change over the draft
// this sidecar saved last looks up in that draft's merge and merges once
// (the first change, over the stable version's copy, merges that copy
// too); the draft's changes are in force nowhere.
func TestDraftChangeMergesOnce(t *testing.T) {
	ag := consultest.Start(t)
	g := groupGateway(t, ag.HTTPAddr, fmt.Sprintf("t%016x", rand.Uint64()), "g1")
	h := g.AdminHandler()
	for i, weight := range []int{3, 4, 5} {
		before := g.merges.Load()
		req := httptest.NewRequest(http.MethodPatch, "/upstreams/primary/targets/127.0.0.1:7001", strings.NewReader(fmt.Sprintf(`{"weight": %d}`, weight)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(strings.ReplaceAll(rec.Body.String(), " ", ""), fmt.Sprintf(`"weight":%d`, weight)) {
			t.Fatalf("PATCH weight %d = %d %s", weight, rec.Code, rec.Body)
		}
		if n := g.merges.Load() - before; i > 0 && n != 1 {
			t.Errorf("draft change %d merged the configuration %d times, want once", i+1, n)
		}
	}
	if ts := g.Upstream("primary").Snapshot().Targets; len(ts) != 1 || ts[0].Weight != 100 {
		t.Errorf("primary runs %+v, want the file's weight 100 (draft edits apply nowhere)", ts)
	}
}
