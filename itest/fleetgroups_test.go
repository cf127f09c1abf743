package itest

// Gateway groups through the real binary: sidecars in groups A and B of a
// real Consul agent (fleet.group), publishing numbered versions of the
// admin layer (state/fleet.go), staged to part of a group and widened or
// rolled back (gateway/fleetstage.go), each sidecar reporting what it
// runs under a Consul session (GET /fleet).

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// fgSidecar is one sidecar of a group: restartable on the same file.
type fgSidecar struct {
	id   string
	node *adNode
	g    *gateway
	api  *adAPI
}

// fgBody is a sidecar's file: service s (route /s) on upstream primary,
// upstream bad, service s2 unless without, and the fleet section.
func fgBody(primary, bad, prefix, group, id string, auto, withS2 bool) string {
	s2 := "  - {name: s2, host: primary}\n"
	if !withS2 {
		s2 = ""
	}
	return fmt.Sprintf(`upstreams:
  - {name: primary, targets: [{target: %s}]}
  - {name: bad, targets: [{target: %s}]}
services:
  - {name: s, host: primary, routes: [{name: rs, paths: [/s]}]}
%sfleet:
  group: %s
  id: %s
  prefix: %s
  auto_publish: %t
  report_interval: 1s
  keep_versions: 1000
`, primary, bad, s2, group, id, prefix, auto)
}

// fgBackends are the targets of upstreams primary and bad.
type fgBackends struct{ primary, bad string }

func fgStart(t *testing.T, ag *consultest.Agent, bk fgBackends, prefix, group, id string, auto, withS2 bool) *fgSidecar {
	t.Helper()
	extra := fmt.Sprintf("  store: consul\n  consul:\n    address: %s\n", ag.HTTPAddr)
	n := adNewNode(t, extra, fgBody(bk.primary, bk.bad, prefix, group, id, auto, withS2))
	s := &fgSidecar{id: id, node: n}
	s.g = n.start()
	s.api = adAdmin(s.g)
	return s
}

func (s *fgSidecar) restart() {
	s.g = s.node.start()
	s.api = adAdmin(s.g)
}

// fgFleet reads GET /fleet.
func fgFleet(t *testing.T, a *adAPI, group string) admin.FleetStatus {
	t.Helper()
	path := "/fleet"
	if group != "" {
		path += "?group=" + group
	}
	r := a.get(t, http.StatusOK, path)
	var st admin.FleetStatus
	if err := json.Unmarshal(r.raw, &st); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, r.raw)
	}
	return st
}

// fgRuns maps each reporting sidecar to the version it runs.
func fgRuns(st admin.FleetStatus) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range st.Sidecars {
		out[s.ID] = s.Version
	}
	return out
}

// fgWaitRuns waits until GET /fleet shows exactly want (id → version),
// every sidecar applied and without drift.
func fgWaitRuns(t *testing.T, a *adAPI, group string, want map[string]uint64) admin.FleetStatus {
	t.Helper()
	var st admin.FleetStatus
	waitFor(t, 15*time.Second, fmt.Sprintf("group %s to run %v", group, want), func() bool {
		st = fgFleet(t, a, group)
		if len(st.Sidecars) != len(want) || st.Drifted != 0 {
			return false
		}
		for _, s := range st.Sidecars {
			if want[s.ID] != s.Version || !s.Applied {
				return false
			}
		}
		return true
	})
	return st
}

// fgRoute adds route name (path /name, service svc) to a's layer (the
// draft in a draft group).
func fgRoute(t *testing.T, a *adAPI, name, svc string) {
	t.Helper()
	r := a.json(t, 0, http.MethodPut, "/routes/"+name, map[string]any{"paths": []string{"/" + name}, "service": map[string]any{"name": svc}})
	if r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("PUT /routes/%s: %d %s", name, r.status, r.raw)
	}
}

// fgServes reports whether s's proxy routes /path (200) rather than 404.
func fgServes(t *testing.T, c *http.Client, s *fgSidecar, path string) bool {
	t.Helper()
	status, _, err := adHit(c, s.g.url(path))
	if err != nil {
		t.Fatalf("%s %s: %v", s.id, path, err)
	}
	if status != http.StatusOK && status != http.StatusNotFound {
		t.Fatalf("%s %s: status %d", s.id, path, status)
	}
	return status == http.StatusOK
}

func TestFleetGroupsPublishStageRollbackPromote(t *testing.T) {
	ag := consultest.Start(t)
	prefix := fmt.Sprintf("outrigger-test-%016x", rand.Uint64())
	p := startBackend(t, "primary", nil)
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	bk := fgBackends{primary: p.Addr, bad: bad.Addr}
	c := newClient()
	a1 := fgStart(t, ag, bk, prefix, "A", "a1", false, true)
	a2 := fgStart(t, ag, bk, prefix, "A", "a2", false, true)
	// a3's file has no service s2: a version routing to it does not build
	// there.
	a3 := fgStart(t, ag, bk, prefix, "A", "a3", false, false)
	b1 := fgStart(t, ag, bk, prefix, "B", "b1", true, true)
	all := []*fgSidecar{a1, a2, a3}
	fgWaitRuns(t, a1.api, "", map[string]uint64{"a1": 0, "a2": 0, "a3": 0})
	fgWaitRuns(t, a1.api, "B", map[string]uint64{"b1": 0})
	runs := func(v1, v2, v3 uint64) map[string]uint64 { return map[string]uint64{"a1": v1, "a2": v2, "a3": v3} }

	t.Run("draft then publish", func(t *testing.T) {
		fgRoute(t, a1.api, "r1", "s")
		if fgServes(t, c, a1, "/r1") {
			t.Fatal("a draft change is in force before it is published")
		}
		if d := a2.api.get(t, http.StatusOK, "/fleet/draft"); !strings.Contains(string(d.raw), `"r1"`) {
			t.Fatalf("a2 does not see the group's draft: %s", d.raw)
		}
		v := a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "add r1", "author": "ann"})
		if v.num("version") != 1 || !strings.HasPrefix(v.str("hash"), "sha256:") || v.str("author") != "ann" || v.str("message") != "add r1" {
			t.Fatalf("publish: %s", v.raw)
		}
		fgWaitRuns(t, a1.api, "", runs(1, 1, 1))
		for _, s := range all {
			if !fgServes(t, c, s, "/r1") {
				t.Fatalf("%s does not route /r1 at version 1", s.id)
			}
		}
	})

	t.Run("staged to one of three, widened", func(t *testing.T) {
		fgRoute(t, a2.api, "r2", "s")
		a2.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "add r2",
			"stage": map[string]any{"sidecars": []string{"a1"}, "interval": "1s", "min_requests": 0}})
		fgWaitRuns(t, a3.api, "", runs(2, 1, 1))
		if !fgServes(t, c, a1, "/r2") || fgServes(t, c, a2, "/r2") || fgServes(t, c, a3, "/r2") {
			t.Fatal("only a1 should route /r2")
		}
		st := fgFleet(t, a3.api, "")
		if st.Version != 1 || st.Latest != 2 || st.Stage == nil || st.Stage.State != state.StageRunning {
			t.Fatalf("head during the stage: %+v", st)
		}
		// Another publish waits for the stage.
		if r := a1.api.json(t, http.StatusConflict, http.MethodPost, "/fleet/rollback", map[string]any{"version": 1}); !strings.Contains(r.str("message"), "staged publish") {
			t.Fatalf("rollback during a stage: %s", r.raw)
		}
		a3.api.json(t, http.StatusOK, http.MethodPost, "/fleet/stage", map[string]any{"percent": 100})
		st = fgWaitRuns(t, a1.api, "", runs(2, 2, 2))
		waitFor(t, 10*time.Second, "the stage to complete", func() bool {
			st = fgFleet(t, a1.api, "")
			return st.Version == 2 && st.Stage != nil && st.Stage.State == state.StageCompleted
		})
		for _, s := range all {
			if !fgServes(t, c, s, "/r2") {
				t.Fatalf("%s does not route /r2 at version 2", s.id)
			}
		}
	})

	t.Run("rollback publishes version 1's content as 3", func(t *testing.T) {
		v := a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/rollback", map[string]any{"version": 1, "message": "r2 was wrong"})
		v1 := a1.api.get(t, http.StatusOK, "/fleet/versions/1")
		if v.num("version") != 3 || v.str("hash") != v1.str("hash") || v.str("source") != "rollback" || v.str("from") != "1" {
			t.Fatalf("rollback: %s (version 1: %s)", v.raw, v1.raw)
		}
		fgWaitRuns(t, a1.api, "", runs(3, 3, 3))
		for _, s := range all {
			if fgServes(t, c, s, "/r2") || !fgServes(t, c, s, "/r1") {
				t.Fatalf("%s at version 3 should route /r1 and not /r2", s.id)
			}
		}
		vs := a2.api.get(t, http.StatusOK, "/fleet/versions").data()
		var nums []float64
		for _, v := range vs {
			nums = append(nums, v["version"].(float64))
		}
		if !slices.Equal(nums, []float64{3, 2, 1}) {
			t.Fatalf("versions %v", nums)
		}
	})

	t.Run("a sidecar stopped during a publish catches up on restart", func(t *testing.T) {
		a2.g.signal(syscall.SIGTERM)
		if code := a2.g.wait(15 * time.Second); code != 0 {
			t.Fatalf("a2 exited %d", code)
		}
		// A graceful stop ends a2's session: its report is gone at once.
		waitFor(t, 5*time.Second, "a2's report to go", func() bool { _, ok := fgRuns(fgFleet(t, a1.api, ""))["a2"]; return !ok })
		fgRoute(t, a1.api, "r4", "s")
		a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "add r4"})
		fgWaitRuns(t, a1.api, "", map[string]uint64{"a1": 4, "a3": 4})
		a2.restart()
		fgWaitRuns(t, a1.api, "", runs(4, 4, 4))
		if !fgServes(t, c, a2, "/r4") {
			t.Fatal("a2 does not route /r4 after its restart")
		}
	})

	t.Run("a version that does not build on a3: drift, kept last good", func(t *testing.T) {
		fgRoute(t, a1.api, "r5", "s2")
		a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "r5 to s2"})
		var st admin.FleetStatus
		waitFor(t, 15*time.Second, "a1 and a2 to run 5, a3 to report the failure", func() bool {
			st = fgFleet(t, a2.api, "")
			ok := len(st.Sidecars) == 3
			for _, s := range st.Sidecars {
				if s.ID == "a3" {
					ok = ok && !s.Applied && s.Drift && s.Version == 4 && s.Target == 5 && strings.Contains(s.Error, "s2")
				} else {
					ok = ok && s.Applied && !s.Drift && s.Version == 5
				}
			}
			return ok
		})
		if st.Drifted != 1 {
			t.Fatalf("drifted %d, want 1: %+v", st.Drifted, st.Sidecars)
		}
		waitFor(t, 5*time.Second, "a3's drift metric", func() bool { return flMetric(t, a3.g, "outrigger_fleet_drift") == 1 })
		if !fgServes(t, c, a3, "/r4") || fgServes(t, c, a3, "/r5") || !fgServes(t, c, a1, "/r5") {
			t.Fatal("a3 should keep version 4; a1 runs 5")
		}
		// Back to 4's content (the draft too, minus r5).
		a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/rollback", map[string]any{"version": 4})
		a1.api.do(t, http.StatusNoContent, http.MethodDelete, "/routes/r5", "", "")
		fgWaitRuns(t, a1.api, "", runs(6, 6, 6))
		waitFor(t, 5*time.Second, "a3's drift metric back to 0", func() bool { return flMetric(t, a3.g, "outrigger_fleet_drift") == 0 })
	})

	t.Run("a staged version that fails on its sidecar stops the stage", func(t *testing.T) {
		fgRoute(t, a2.api, "r7", "s2")
		a2.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "r7 to s2",
			"stage": map[string]any{"sidecars": []string{"a3"}, "steps": []any{100}, "interval": "1s", "min_requests": 0}})
		var st admin.FleetStatus
		waitFor(t, 15*time.Second, "the stage to roll back", func() bool {
			st = fgFleet(t, a1.api, "")
			return st.Stage != nil && st.Stage.State == state.StageRolledBack
		})
		if st.Version != 6 || st.Latest != 7 || !strings.Contains(st.Stage.Reason, "a3 could not apply version 7") {
			t.Fatalf("after the failed stage: %+v %+v", st, st.Stage)
		}
		fgWaitRuns(t, a1.api, "", runs(6, 6, 6))
		if fgServes(t, c, a1, "/r7") || fgServes(t, c, a2, "/r7") {
			t.Fatal("a1 and a2 ran the stopped stage's version")
		}
		a2.api.do(t, http.StatusNoContent, http.MethodDelete, "/routes/r7", "", "")
	})

	t.Run("a draft that does not build here is refused before publishing", func(t *testing.T) {
		// a3 validates the draft against its own file (no s2).
		fgRoute(t, a1.api, "r8", "s2")
		r := a3.api.json(t, http.StatusBadRequest, http.MethodPost, "/fleet/publish", map[string]any{"message": "r8"})
		if !strings.Contains(r.str("message"), "s2") {
			t.Fatalf("refusal: %s", r.raw)
		}
		if st := fgFleet(t, a1.api, ""); st.Latest != 7 {
			t.Fatalf("a refused publish took a number: latest %d", st.Latest)
		}
		a1.api.do(t, http.StatusNoContent, http.MethodDelete, "/routes/r8", "", "")
	})

	t.Run("promote A's version 6 to B, A untouched", func(t *testing.T) {
		before := fgFleet(t, a1.api, "")
		v6 := a1.api.get(t, http.StatusOK, "/fleet/versions/6")
		v := a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/promote", map[string]any{"version": 6, "to_group": "B"})
		if v.num("version") != 1 || v.str("hash") != v6.str("hash") || v.str("from") != "A/6" {
			t.Fatalf("promote: %s", v.raw)
		}
		fgWaitRuns(t, b1.api, "", map[string]uint64{"b1": 1})
		if !fgServes(t, c, b1, "/r4") || !fgServes(t, c, b1, "/r1") {
			t.Fatal("b1 does not route A's version 6")
		}
		after := fgFleet(t, a1.api, "")
		if after.Version != before.Version || after.Latest != before.Latest || !maps4Equal(fgRuns(after), fgRuns(before)) {
			t.Fatalf("A changed: %+v → %+v", before, after)
		}
		// B auto-publishes: an admin change there is its version 2, A stays.
		fgRoute(t, b1.api, "rb", "s")
		fgWaitRuns(t, b1.api, "", map[string]uint64{"b1": 2})
		if fgServes(t, c, a1, "/rb") {
			t.Fatal("B's change reached A")
		}
		if bv := b1.api.get(t, http.StatusOK, "/fleet/versions/2"); bv.str("source") != "admin" || bv.str("message") != "PUT /routes/rb" {
			t.Fatalf("B's auto-published version: %s", bv.raw)
		}
	})

	t.Run("staged by steps: widened and completed by itself", func(t *testing.T) {
		fgRoute(t, a1.api, "r9", "s")
		v := a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "add r9",
			"stage": map[string]any{"sidecars": []string{"a2"}, "steps": []any{50, 100}, "interval": "1s", "min_requests": 0}})
		n := uint64(v.num("version"))
		var st admin.FleetStatus
		waitFor(t, 20*time.Second, "the stage to complete by its steps", func() bool {
			st = fgFleet(t, a1.api, "")
			return st.Stage != nil && st.Stage.Version == n && st.Stage.State != state.StageRunning
		})
		if st.Stage.State != state.StageCompleted || st.Version != n || st.Stage.Percent != 100 {
			t.Fatalf("stage: %+v", st.Stage)
		}
		fgWaitRuns(t, a1.api, "", runs(n, n, n))
		step := fmt.Sprintf("staged publish of version %d widened to 50%%", n)
		if len(a1.g.logsWhere(step))+len(a2.g.logsWhere(step))+len(a3.g.logsWhere(step)) != 1 {
			t.Fatal("no sidecar logged the step to 50%")
		}
	})

	t.Run("staged sidecar erring more than the rest: rolled back", func(t *testing.T) {
		a1.api.form(t, http.StatusOK, http.MethodPatch, "/services/s", "host", "bad")
		v := a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "s to bad",
			"stage": map[string]any{"sidecars": []string{"a2"}, "steps": []any{100}, "interval": "1h", "min_requests": 10, "max_error_rate_increase": 0.1}})
		n := uint64(v.num("version"))
		waitFor(t, 15*time.Second, "a2 to run the staged version", func() bool { return fgRuns(fgFleet(t, a1.api, ""))["a2"] == n })
		// Traffic on every sidecar until the stage stops (bounded).
		var st admin.FleetStatus
		for i := 0; ; i++ {
			if i == 600 {
				t.Fatalf("the stage did not roll back after %d requests per sidecar: %+v", i, st.Stage)
			}
			for _, s := range all {
				if _, _, err := adHit(c, s.g.url("/s")); err != nil {
					t.Fatal(err)
				}
			}
			if i%10 == 9 {
				if st = fgFleet(t, a1.api, ""); st.Stage.State != state.StageRunning {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st.Stage.State != state.StageRolledBack || !strings.Contains(st.Stage.Reason, "error rate") {
			t.Fatalf("stage: %+v", st.Stage)
		}
		fgWaitRuns(t, a1.api, "", runs(st.Version, st.Version, st.Version))
		if status, who, err := adHit(c, a2.g.url("/s")); err != nil || status != http.StatusOK || who != "primary" {
			t.Fatalf("a2 after the rollback: %d %s %v", status, who, err)
		}
		a1.api.form(t, http.StatusOK, http.MethodPatch, "/services/s", "host", "primary")
	})
}

func maps4Equal(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFleetGroupConcurrentPublishersAndKill: two auto-publish sidecars
// take admin changes at once (each one a version): check-and-set on the
// group's head gives every acknowledged change its own number, none
// skipped; one publisher is killed -9 mid-stream and nothing it
// acknowledged is lost.
func TestFleetGroupConcurrentPublishersAndKill(t *testing.T) {
	ag := consultest.Start(t)
	prefix := fmt.Sprintf("outrigger-test-%016x", rand.Uint64())
	p := startBackend(t, "primary", nil)
	bk := fgBackends{primary: p.Addr, bad: p.Addr}
	x := fgStart(t, ag, bk, prefix, "A", "x", true, true)
	y := fgStart(t, ag, bk, prefix, "A", "y", true, true)
	fgWaitRuns(t, x.api, "", map[string]uint64{"x": 0, "y": 0})

	const perWriter = 40
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	write := func(s *fgSidecar, tag string, killAfter int) {
		defer wg.Done()
		for i := range perWriter {
			target := fmt.Sprintf("127.0.%d.%d:80", map[string]int{"x": 1, "y": 2}[tag], i+1)
			r, err := s.api.try(http.MethodPost, "/upstreams/primary/targets", adFormType, adForm("target", target, "weight", "1"))
			if err == nil && r.status == http.StatusCreated {
				mu.Lock()
				acked = append(acked, target)
				mu.Unlock()
			} else if killAfter < 0 {
				t.Errorf("%s: POST %s: %v %d %s", tag, target, err, r.status, r.raw)
				return
			}
			if i == killAfter {
				// kill -9 while its next changes are under way.
				go func() { _ = s.g.cmd.Process.Signal(syscall.SIGKILL) }()
			}
		}
	}
	wg.Add(2)
	go write(x, "x", perWriter/2)
	go write(y, "y", -1)
	wg.Wait()
	if t.Failed() {
		return
	}
	<-x.g.exited
	// x's report goes with its session's TTL (10s; Consul may take up to
	// twice that).
	waitFor(t, 40*time.Second, "the killed sidecar's report to expire", func() bool {
		_, ok := fgRuns(fgFleet(t, y.api, ""))["x"]
		return !ok
	})
	// Every acknowledged target is in the group's stable version, and
	// the numbers 1..latest are all there, each once.
	st := fgFleet(t, y.api, "")
	if st.Latest < uint64(len(acked)) {
		t.Fatalf("latest version %d for %d acknowledged changes", st.Latest, len(acked))
	}
	for n := uint64(1); n <= st.Latest; n++ {
		if r := y.api.get(t, 0, fmt.Sprintf("/fleet/versions/%d", n)); r.status != http.StatusOK {
			t.Fatalf("version %d: %d %s", n, r.status, r.raw)
		}
	}
	last := y.api.get(t, http.StatusOK, fmt.Sprintf("/fleet/versions/%d", st.Version))
	var v state.Version
	if err := json.Unmarshal(last.raw, &v); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tg := range v.Doc.Upstreams["primary"].Targets {
		have[tg.Target] = true
	}
	for _, a := range acked {
		if !have[a] {
			t.Fatalf("acknowledged target %s is not in version %d", a, st.Version)
		}
	}
	t.Logf("%d acknowledged changes, %d versions (kill -9 of x after %d of its changes)", len(acked), st.Latest, perWriter/2+1)
	// The restarted x runs the group's version.
	x.restart()
	fgWaitRuns(t, y.api, "", map[string]uint64{"x": st.Version, "y": st.Version})

	// A dev agent restarted loses every key: the sidecars publish their
	// last known layer again (one wins), and report again.
	ag.Restart()
	var again admin.FleetStatus
	waitFor(t, 30*time.Second, "the group to be published again and both to report", func() bool {
		r, err := y.api.try(http.MethodGet, "/fleet", "", "")
		if err != nil || r.status != http.StatusOK || json.Unmarshal(r.raw, &again) != nil || again.Version == 0 || len(again.Sidecars) != 2 {
			return false
		}
		for _, s := range again.Sidecars {
			if s.Version != again.Version || !s.Applied {
				return false
			}
		}
		return true
	})
	back, err := y.api.try(http.MethodGet, fmt.Sprintf("/fleet/versions/%d", again.Version), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var bv state.Version
	if err := json.Unmarshal(back.raw, &bv); err != nil || bv.Hash != v.Hash {
		t.Fatalf("republished version %d: hash %s, want the last known %s (%v)", again.Version, bv.Hash, v.Hash, err)
	}
}
