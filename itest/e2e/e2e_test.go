package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// maxImageBytes bounds the outrigger image: under 30 MB, in the decimal
// megabytes `docker images` shows (the bound the Kubernetes discovery work
// holds the image to; 26.4 MB with TLS, HTTP/2, gRPC and Kubernetes in).
const maxImageBytes = 30_000_000

// TestImages checks what the images promise: FROM scratch (no shell), a
// non-root numeric user, the listeners exposed, and the outrigger image
// under 30 MB.
func TestImages(t *testing.T) {
	img := images(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tag := range []string{img.Outrigger, img.Consul, img.Demo} {
		ins, err := provider.Client().ImageInspect(ctx, tag)
		if err != nil {
			t.Fatalf("inspect %s: %v", tag, err)
		}
		t.Logf("%s: %.1f MB, user %q, entrypoint %q, cmd %q", tag, float64(ins.Size)/1e6, ins.Config.User, ins.Config.Entrypoint, ins.Config.Cmd)
		if ins.Config.User != "65532:65532" {
			t.Errorf("%s runs as %q, want 65532:65532", tag, ins.Config.User)
		}
		if tag == img.Outrigger {
			if ins.Size >= maxImageBytes {
				t.Errorf("%s is %d bytes, want under %d (30 MB as docker images counts): the image is the binary plus 0.2 MB of CA bundle and passwd, so the binary grew; `go version -m` on it lists the modules linked in",
					tag, ins.Size, maxImageBytes)
			}
			if !slices.Equal(ins.Config.Entrypoint, []string{"/outrigger"}) ||
				!slices.Equal(ins.Config.Cmd, []string{"run", "--config", "/etc/outrigger/outrigger.yaml"}) {
				t.Errorf("%s: entrypoint %q cmd %q", tag, ins.Config.Entrypoint, ins.Config.Cmd)
			}
			for _, p := range []string{"8000/tcp", "8001/tcp"} {
				if _, ok := ins.Config.ExposedPorts[p]; !ok {
					t.Errorf("%s does not expose %s (exposes %v)", tag, p, ins.Config.ExposedPorts)
				}
			}
		}
	}

	// No shell: a container asked to run /bin/sh cannot start.
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:      img.Outrigger,
			Name:       fmt.Sprintf("outrigger-e2e-%s-noshell", runID),
			Entrypoint: []string{"/bin/sh", "-c", "true"},
			Labels:     runLabels(),
		},
		Started: true,
		Logger:  tclog.TestLogger(t),
	})
	testcontainers.CleanupContainer(t, ctr, testcontainers.StopTimeout(0))
	if err == nil {
		t.Errorf("%s started /bin/sh: the image has a shell", img.Outrigger)
	}
}

// TestBalancesAcrossInstances: requests through the client sidecar are
// spread evenly (round robin) over the registered instances, and an
// instance whose /health fails leaves the rotation (its sidecar's /ready
// turns 503 and it fails its Consul check) and comes back when it heals.
func TestBalancesAcrossInstances(t *testing.T) {
	c := newCluster(t, clusterSpec{Instances: 3, CheckTTL: "3s", ShutdownDelay: "0s"})
	url := c.ProxyURL + "/web/balance"

	// Sequential requests: smooth round robin is exact per cycle, so 300
	// requests give 100 to each instance (a retry would shift one or two).
	st := startLoad(url, 1, 300, 60*time.Second).Wait()
	t.Logf("300 sequential requests: %v", st.ByInstance)
	if st.Failed > 0 || st.Done != 300 {
		t.Fatalf("%d of %d requests failed: %v", st.Failed, st.Done, st.Errors)
	}
	for _, p := range c.Web {
		if n := st.ByInstance[p.Name]; n < 98 || n > 102 {
			t.Errorf("%s served %d of 300 requests, want 100±2 (all: %v)", p.Name, n, st.ByInstance)
		}
	}

	// web-1 turns unhealthy: it leaves Consul's passing set and the
	// client's rotation; its sidecar reports not ready.
	sick := c.Web[0]
	if code := post(sick.AppURL + "/admin/health?status=500"); code != http.StatusOK {
		t.Fatalf("flip %s's /health: status %d", sick.Name, code)
	}
	took := waitFor(t, 15*time.Second, sick.Name+"'s sidecar /ready to answer 503", func() bool {
		return status(sick.AdminURL+"/ready", "") == http.StatusServiceUnavailable
	})
	t.Logf("%s's sidecar not ready %s after its /health failed", sick.Name, took.Round(time.Millisecond))
	waitFor(t, 15*time.Second, sick.Name+" to fail its Consul check", func() bool {
		return !slices.Contains(c.passing("web"), sick.Name)
	})
	waitFor(t, 15*time.Second, "the client sidecar to stop routing to "+sick.Name, func() bool {
		n, ok := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "eligible")
		return ok && n == 2
	})
	st = startLoad(url, 2, 200, 60*time.Second).Wait()
	if st.Failed > 0 || st.ByInstance[sick.Name] != 0 || len(st.ByInstance) != 2 {
		t.Fatalf("with %s unhealthy: %d failed (%v), served by %v", sick.Name, st.Failed, st.Errors, st.ByInstance)
	}

	// Healed: back in Consul and in the rotation.
	if code := post(sick.AppURL + "/admin/health?status=200"); code != http.StatusOK {
		t.Fatalf("restore %s's /health: status %d", sick.Name, code)
	}
	waitFor(t, 20*time.Second, "the client sidecar to route to "+sick.Name+" again", func() bool {
		n, ok := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "eligible")
		return ok && n == 3
	})
	st = startLoad(url, 1, 30, 30*time.Second).Wait()
	if st.Failed > 0 || st.ByInstance[sick.Name] == 0 {
		t.Fatalf("after %s healed: %d failed (%v), served by %v", sick.Name, st.Failed, st.Errors, st.ByInstance)
	}
}

// TestStoppingAnInstanceFailsNoRequest: `docker stop` on an instance under
// load. The instance goes lame duck (its /health fails while it still
// serves), its sidecar fails the TTL check, the client sidecar drops it,
// and the instance exits; retries cover the rest. Not one GET fails.
func TestStoppingAnInstanceFailsNoRequest(t *testing.T) {
	c := newCluster(t, clusterSpec{Instances: 3, CheckTTL: "3s", ShutdownDelay: "3s"})
	l := startLoad(c.ProxyURL+"/web/stop", 4, 100_000, 90*time.Second)
	defer l.Stop()
	if !l.WaitDone(300, 30*time.Second) {
		t.Fatalf("load did not reach 300 requests: %+v", l.Stats())
	}
	victim := c.Web[1]
	before := l.Stats()
	if before.ByInstance[victim.Name] == 0 {
		t.Fatalf("%s got no traffic before the stop: %v", victim.Name, before.ByInstance)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grace := 20 * time.Second
	start := time.Now()
	if err := victim.App.Stop(ctx, &grace); err != nil {
		t.Fatalf("docker stop %s: %v", victim.Name, err)
	}
	t.Logf("docker stop %s took %s", victim.Name, time.Since(start).Round(time.Millisecond))
	waitFor(t, 15*time.Second, "the client sidecar to drop "+victim.Name, func() bool {
		n, ok := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "eligible")
		return ok && n == 2
	})
	stopped := l.Stats()
	if !l.WaitDone(stopped.Done+300, 30*time.Second) {
		t.Fatalf("load stalled after the stop: %+v", l.Stats())
	}
	st := l.Stop()
	after := sub(st.ByInstance, stopped.ByInstance)
	t.Logf("%d requests, %d failed; per instance %v; after the stop %v", st.Done, st.Failed, st.ByInstance, after)
	if st.Failed > 0 {
		t.Fatalf("%d of %d requests failed while %s stopped: %v", st.Failed, st.Done, victim.Name, st.Errors)
	}
	if after[victim.Name] != 0 || len(after) != 2 {
		t.Fatalf("after the stop, requests went to %v", after)
	}
}

// TestPartitionedInstanceIsEjected: an instance disconnected from the
// network (no RST, its packets vanish) is ejected by the client sidecar's
// own health checks (connect timeout 500ms and one timeout ejects,
// passively; two 1s probe timeouts, actively) well before Consul could
// notice (the check's TTL is 12s here), and requests keep succeeding
// meanwhile, retried on the other instances.
func TestPartitionedInstanceIsEjected(t *testing.T) {
	c := newCluster(t, clusterSpec{Instances: 3, CheckTTL: "12s", ShutdownDelay: "0s"})
	l := startLoad(c.ProxyURL+"/web/partition", 4, 100_000, 90*time.Second)
	defer l.Stop()
	if !l.WaitDone(300, 30*time.Second) {
		t.Fatalf("load did not reach 300 requests: %+v", l.Stats())
	}
	victim := c.Web[2]
	c.partition(victim)
	cut := time.Now()
	// Ejected, not dropped: the target is still discovered (Consul has not
	// noticed) but marked unhealthy.
	const ejectBound = 10 * time.Second
	took := waitFor(t, 3*ejectBound, victim.Name+" to be ejected by the client sidecar's health checks", func() bool {
		v, ok := c.metric("outrigger_target_healthy", "upstream", "web", "target", victim.Target())
		return ok && v == 0
	})
	t.Logf("%s ejected %s after the partition", victim.Name, took.Round(time.Millisecond))
	if took > ejectBound {
		t.Errorf("ejection took %s, want under %s (connect_timeout 500ms, 1s probes)", took, ejectBound)
	}
	if !slices.Contains(c.passing("web"), victim.Name) {
		t.Logf("note: Consul already dropped %s; the ejection may have come from discovery", victim.Name)
	}
	ejected := l.Stats()
	if !l.WaitDone(ejected.Done+300, 30*time.Second) {
		t.Fatalf("load stalled after the ejection: %+v", l.Stats())
	}
	st := l.Stop()
	after := sub(st.ByInstance, ejected.ByInstance)
	t.Logf("%d requests, %d failed, in %s since the partition; per instance %v; after the ejection %v",
		st.Done, st.Failed, time.Since(cut).Round(time.Millisecond), st.ByInstance, after)
	if st.Failed > 0 {
		t.Fatalf("%d of %d requests failed across the partition: %v", st.Failed, st.Done, st.Errors)
	}
	if after[victim.Name] != 0 || len(after) != 2 {
		t.Fatalf("after the ejection, requests went to %v", after)
	}
}

// TestCanaryWeightChangeThroughAdminAPI: the canary set-up of a sidecar
// mesh. Three instances register in Consul, web-3 with meta version=v2.
// Through the client sidecar's admin API (published on 127.0.0.1, bearer
// token) an override gives the targets with version v2 a 20 % share of
// upstream web, and the very next requests split exactly 40/40/20; then
// the share is PATCHed to 10 % and web-1's discovered target to twice the
// weight the others were discovered with (Consul's passing weight, 1),
// and they split 60/30/10.
//
// The figures: an override's share is a fixed part of a budget of 60000
// weight units and the others split the rest by weight, so the effective
// weights are 24000:24000:12000 (a round-robin cycle 2,2,1 of 5 picks)
// and then 36000:18000:6000 (6,3,1 of 10); 500 sequential requests span
// whole cycles either way (see checkSplit).
func TestCanaryWeightChangeThroughAdminAPI(t *testing.T) {
	c := newCluster(t, clusterSpec{Instances: 3, CheckTTL: "3s", ShutdownDelay: "0s", Canaries: 1})
	const path = "/web/canary"
	web1, web2, web3 := c.Web[0].Name, c.Web[1].Name, c.Web[2].Name

	if code := status(c.AdminURL+"/upstreams/web/targets", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /upstreams/web/targets without the token: status %d, want 401", code)
	}
	ts := c.targets()
	t.Logf("targets: %v", ts)
	for _, p := range c.Web {
		tg, ok := ts[p.Name]
		switch {
		case !ok:
			t.Fatalf("the client sidecar does not list %s: %v", p.Name, ts)
		case tg.Target != p.Target():
			t.Errorf("%s is listed at %s, want %s", p.Name, tg.Target, p.Target())
		case tg.Source == "static" || tg.Source == "admin":
			t.Errorf("%s's source is %q, want its discovery source", p.Name, tg.Source)
		case tg.Healthy == nil || !*tg.Healthy:
			t.Errorf("%s is not healthy: %v", p.Name, tg)
		}
		if v, want := tg.Meta["version"], map[bool]string{false: "v1", true: "v2"}[p.Name == web3]; v != want {
			t.Errorf("%s's meta version is %q, want %q (meta %v)", p.Name, v, want, tg.Meta)
		}
	}
	if len(ts) != len(c.Web) {
		t.Fatalf("the client sidecar lists %d targets, want %d: %v", len(ts), len(c.Web), ts)
	}

	// Version v2 gets a 20 % share.
	var ov apiOverride
	c.admin(http.MethodPost, "/upstreams/web/overrides", map[string]any{"meta": map[string]string{"version": "v2"}, "share": 20}, http.StatusCreated, &ov)
	if ov.ID == "" || ov.Share == nil || *ov.Share != 20 || ov.Meta["version"] != "v2" {
		t.Fatalf("created override %+v", ov)
	}
	checkShares(t, "v2 at 20 %", c.targets(), map[string]float64{web1: 0.4, web2: 0.4, web3: 0.2})
	c.checkSplit("v2 at 20 %", path, 500, map[string]int{web1: 200, web2: 200, web3: 100})

	// Down to 10 %, and web-1 at twice web-2's weight: the 90 % left are
	// split 2:1 between web-1 and web-2.
	if ts[web1].Weight != ts[web2].Weight || ts[web2].Weight <= 0 {
		t.Fatalf("discovered weights differ: %v", ts)
	}
	double := 2 * ts[web2].Weight
	c.admin(http.MethodPatch, "/upstreams/web/overrides/"+ov.ID, map[string]any{"share": 10}, http.StatusOK, &ov)
	if ov.Share == nil || *ov.Share != 10 {
		t.Fatalf("patched override %+v", ov)
	}
	var tg apiTarget
	c.admin(http.MethodPatch, "/upstreams/web/targets/"+ts[web1].Target, map[string]any{"weight": double}, http.StatusOK, &tg)
	if tg.Target != ts[web1].Target || tg.Weight != double {
		t.Fatalf("patched target %v, want %s at weight %d", tg, ts[web1].Target, double)
	}
	var ovs struct{ Data []apiOverride }
	c.admin(http.MethodGet, "/upstreams/web/overrides", nil, http.StatusOK, &ovs)
	if len(ovs.Data) != 2 {
		t.Errorf("overrides: %+v, want the share and web-1's weight", ovs.Data)
	}
	checkShares(t, "v2 at 10 %, web-1 at double weight", c.targets(), map[string]float64{web1: 0.6, web2: 0.3, web3: 0.1})
	c.checkSplit("v2 at 10 %, web-1 at double weight", path, 500, map[string]int{web1: 300, web2: 150, web3: 50})
}

// checkShares checks the traffic shares the admin API's effective weights
// imply, to 0.1 %.
func checkShares(t *testing.T, what string, ts map[string]apiTarget, want map[string]float64) {
	t.Helper()
	got := effectiveShares(ts)
	for name, w := range want {
		if g := got[name]; g < w-0.001 || g > w+0.001 {
			t.Errorf("%s: %s's effective weight is %.4f of the total, want %.4f (targets %v)", what, name, g, w, ts)
		}
	}
}

// TestAdminChangesSurviveSidecarRestart: the client sidecar keeps its
// admin layer in a state file on a Docker volume. A share override (20 %
// to version v2, web-3) and a manual mark (web-1 unhealthy) are made
// through the admin API; the pod is restarted (docker stop, docker start);
// the new process restores both from the file before it serves: the admin
// API shows them, and the traffic splits 80/20 between web-2 and web-3
// with nothing to web-1, though web-1 is healthy and passing in Consul.
func TestAdminChangesSurviveSidecarRestart(t *testing.T) {
	c := newCluster(t, clusterSpec{Instances: 3, CheckTTL: "3s", ShutdownDelay: "0s", Canaries: 1, ClientState: true, ClientCheckTTL: "3s"})
	const path = "/web/restart"
	sick, web2, web3 := c.Web[0], c.Web[1].Name, c.Web[2].Name
	ts := c.targets()
	if len(ts) != 3 || ts[sick.Name].Target != sick.Target() {
		t.Fatalf("targets: %v", ts)
	}

	var ov apiOverride
	c.admin(http.MethodPost, "/upstreams/web/overrides", map[string]any{"meta": map[string]string{"version": "v2"}, "share": 20}, http.StatusCreated, &ov)
	c.admin(http.MethodPut, "/upstreams/web/targets/"+sick.Target()+"/unhealthy", nil, http.StatusNoContent, nil)
	// Effective weights 48000:12000 between web-2 and web-3: a cycle of 5.
	c.checkSplit("before the restart", path, 250, map[string]int{sick.Name: 0, web2: 200, web3: 50})
	var before, after struct {
		StartedAt int64 `json:"started_at"` // Unix seconds
	}
	c.admin(http.MethodGet, "/status", nil, http.StatusOK, &before)

	c.stopPod(c.Client)
	// The layer is in the file on the volume, read from the stopped
	// container.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := readFile(ctx, c.Client.Sidecar, clientStateFile)
	if err != nil {
		t.Fatalf("reading the state file from the stopped sidecar: %v", err)
	}
	var saved struct {
		Version uint64 `json:"version"`
		Doc     struct {
			Overrides []struct{ ID string }
			Marks     map[string]map[string]string
		} `json:"doc"`
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatalf("state file: %v\n%s", err, raw)
	}
	t.Logf("state file %s on volume %s: version %d, %d bytes", clientStateFile, c.Client.StateVolume, saved.Version, len(raw))
	if len(saved.Doc.Overrides) != 1 || saved.Doc.Overrides[0].ID != ov.ID || saved.Doc.Marks["web"][sick.Target()] != "unhealthy" {
		t.Errorf("the state file does not hold the override %s and the mark of %s:\n%s", ov.ID, sick.Target(), raw)
	}

	restart := time.Now()
	c.startStoppedPod(c.Client)
	took := waitFor(t, startTimeout, "the restarted client sidecar to be ready", func() bool {
		return status(c.AdminURL+"/ready", "") == http.StatusOK
	})
	waitFor(t, discoverTimeout, "the restarted client sidecar to see web-2 and web-3 eligible and web-1 unhealthy", func() bool {
		e, ok1 := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "eligible")
		u, ok2 := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "unhealthy")
		return ok1 && ok2 && e == 2 && u == 1
	})
	t.Logf("client pod ready %s after docker start, targets known after %s", took.Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))
	c.admin(http.MethodGet, "/status", nil, http.StatusOK, &after)
	if after.StartedAt <= before.StartedAt {
		t.Fatalf("the client sidecar started at %d before the restart and %d after: not restarted", before.StartedAt, after.StartedAt)
	}

	var ovs struct{ Data []apiOverride }
	c.admin(http.MethodGet, "/upstreams/web/overrides", nil, http.StatusOK, &ovs)
	if len(ovs.Data) != 1 || ovs.Data[0].ID != ov.ID || ovs.Data[0].Share == nil || *ovs.Data[0].Share != 20 || ovs.Data[0].Meta["version"] != "v2" {
		t.Errorf("overrides after the restart: %+v, want %s (meta version v2, share 20)", ovs.Data, ov.ID)
	}
	var health struct{ Data []apiHealth }
	c.admin(http.MethodGet, "/upstreams/web/health", nil, http.StatusOK, &health)
	for _, h := range health.Data {
		wantHealth, wantMark := "HEALTHY", "none"
		if h.Target == sick.Target() {
			wantHealth, wantMark = "UNHEALTHY", "unhealthy"
		}
		if h.Health != wantHealth || h.Data.Mark != wantMark {
			t.Errorf("after the restart, %s is %s (mark %s), want %s (mark %s)", h.Target, h.Health, h.Data.Mark, wantHealth, wantMark)
		}
	}
	if len(health.Data) != 3 {
		t.Errorf("health after the restart lists %d targets, want 3: %+v", len(health.Data), health.Data)
	}
	if !slices.Contains(c.passing("web"), sick.Name) {
		t.Errorf("%s is not passing in Consul: the mark alone should keep it out", sick.Name)
	}
	c.checkSplit("after the restart", path, 500, map[string]int{sick.Name: 0, web2: 400, web3: 100})
}
