package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	yaml "go.yaml.in/yaml/v3"
)

// The client sidecar's admin state, when clusterSpec.ClientState asks for
// it: a Docker volume mounted at stateMount, holding a directory owned by
// the image's user in which the sidecar writes clientStateFile. The
// volume's root belongs to root (the image has nothing at stateMount for
// Docker to copy ownership from, and no shell to chown with), so the
// directory is created with the image's user as owner when the container
// is created, as an init container or fsGroup would in Kubernetes.
const (
	stateMount      = "/var/lib/outrigger"
	stateDir        = "state"
	clientStateFile = stateMount + "/" + stateDir + "/admin-state.json"
	// imageUID is the outrigger image's user and group (USER 65532:65532).
	imageUID = 65532
)

// deriveConfig writes a copy of the YAML configuration src, with the
// scalar at path set to value, into the test's temporary directory and
// returns its path. Every key of path but the last must exist (a mapping),
// so a change in the compose configuration that moves a block fails here
// rather than silently testing something else.
func deriveConfig(t *testing.T, src string, path []string, value string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		t.Fatalf("%s: not a YAML document", src)
	}
	n := doc.Content[0]
	for i, key := range path {
		if n.Kind != yaml.MappingNode {
			t.Fatalf("%s: %s is not a mapping", src, strings.Join(path[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
			}
		}
		last := i == len(path)-1
		switch {
		case next == nil && !last:
			t.Fatalf("%s: no %s", src, strings.Join(path[:i+1], "."))
		case next == nil:
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle})
		case last:
			*next = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle}
		}
		n = next
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.CreateTemp(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".yaml")+"-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Write(out); err != nil {
		t.Fatal(err)
	}
	// Bind-mounted read-only; the image's user must read it.
	if err := dst.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	return dst.Name()
}

// newVolume creates a Docker volume labelled as this run's, removed when
// the test ends (after the containers using it: cleanups run last first).
func (c *cluster) newVolume(ctx context.Context, name string) string {
	c.t.Helper()
	full := fmt.Sprintf("outrigger-e2e-%s-%s-%s", runID, sanitize(c.t.Name()), name)
	if _, err := provider.Client().VolumeCreate(ctx, client.VolumeCreateOptions{Name: full, Labels: runLabels()}); err != nil {
		c.t.Fatalf("create volume %s: %v", full, err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := provider.Client().VolumeRemove(ctx, full, client.VolumeRemoveOptions{Force: true}); err != nil {
			c.t.Logf("remove volume %s: %v", full, err)
		}
	})
	return full
}

// withStateVolume mounts vol at stateMount in req's container and, once
// the container is created, creates stateDir in it owned by the image's
// user (mode 0700). Docker's archive API writes into a created container's
// volumes, read-only root or not; an existing directory is kept.
func withStateVolume(req *testcontainers.ContainerRequest, vol string) {
	prev := req.HostConfigModifier
	req.HostConfigModifier = func(hc *container.HostConfig) {
		if prev != nil {
			prev(hc)
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: vol, Target: stateMount})
	}
	req.LifecycleHooks = append(req.LifecycleHooks, testcontainers.ContainerLifecycleHooks{
		PostCreates: []testcontainers.ContainerHook{func(ctx context.Context, ctr testcontainers.Container) error {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeDir, Name: stateDir + "/", Mode: 0o700,
				Uid: imageUID, Gid: imageUID, ModTime: time.Now(),
			}); err != nil {
				return err
			}
			if err := tw.Close(); err != nil {
				return err
			}
			_, err := provider.Client().CopyToContainer(ctx, ctr.GetContainerID(), client.CopyToContainerOptions{
				DestinationPath: stateMount, Content: &buf,
			})
			if err != nil {
				return fmt.Errorf("create %s/%s owned by %d: %w", stateMount, stateDir, imageUID, err)
			}
			return nil
		}},
	})
}

// readFile reads one file out of a container, running or stopped.
func readFile(ctx context.Context, ctr testcontainers.Container, path string) ([]byte, error) {
	res, err := provider.Client().CopyFromContainer(ctx, ctr.GetContainerID(), client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, err
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, 1<<20))
		}
	}
}

// stopPod stops a pod the way its restart begins: the application first
// (it lives in the sidecar's network namespace), then the sidecar, which
// deregisters and drains.
func (c *cluster) stopPod(p *pod) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grace := 15 * time.Second
	start := time.Now()
	if err := p.App.Stop(ctx, &grace); err != nil {
		c.t.Fatalf("docker stop %s: %v", p.Name, err)
	}
	if err := p.Sidecar.Stop(ctx, &grace); err != nil {
		c.t.Fatalf("docker stop %s-sidecar: %v", p.Name, err)
	}
	c.t.Logf("pod %s stopped in %s", p.Name, time.Since(start).Round(time.Millisecond))
}

// startStoppedPod starts a pod stopped by stopPod again: the sidecar,
// whose namespace comes back at the same fixed address, then the
// application, which joins that new namespace (left running, it would stay
// behind in the old one). Docker publishes the ports anew, possibly on
// other host ports: the pod's URLs (and the cluster's, for the client pod)
// are read again. It does not wait for the pod to be ready.
func (c *cluster) startStoppedPod(p *pod) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Sidecar.Start(ctx); err != nil {
		c.t.Fatalf("docker start %s-sidecar: %v", p.Name, err)
	}
	if got := c.ipOf(ctx, p.Sidecar); got != p.IP {
		c.t.Fatalf("%s came back at %s, want %s", p.Name, got, p.IP)
	}
	if err := p.App.Start(ctx); err != nil {
		c.t.Fatalf("docker start %s: %v", p.Name, err)
	}
	p.AppURL = c.published(ctx, p.Sidecar, "9000/tcp")
	p.AdminURL = c.published(ctx, p.Sidecar, "8001/tcp")
	if p == c.Client {
		c.ProxyURL = c.published(ctx, p.Sidecar, "8000/tcp")
		c.AdminURL = p.AdminURL
	}
}

// adminCall calls the client sidecar's admin API with the token, sending
// body (if not nil) as JSON. It returns the status and the answer's body.
func (c *cluster) adminCall(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.AdminURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := quick.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// admin calls the admin API (see adminCall), fails the test unless the
// answer has status want, and decodes it into out (if not nil).
func (c *cluster) admin(method, path string, body any, want int, out any) {
	c.t.Helper()
	code, b, err := c.adminCall(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d: %.500s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %.500s", method, path, err, b)
		}
	}
}

// apiTarget is a target as GET /upstreams/{u}/targets lists it.
type apiTarget struct {
	ID              string            `json:"id"`
	Target          string            `json:"target"`
	Weight          int               `json:"weight"`
	Source          string            `json:"source"`
	EffectiveWeight *int              `json:"effective_weight"`
	Healthy         *bool             `json:"healthy"`
	Meta            map[string]string `json:"meta"`
}

func (t apiTarget) String() string {
	ew, h := "null", "null"
	if t.EffectiveWeight != nil {
		ew = fmt.Sprint(*t.EffectiveWeight)
	}
	if t.Healthy != nil {
		h = fmt.Sprint(*t.Healthy)
	}
	return fmt.Sprintf("%s(%s %s weight %d effective %s healthy %s)", t.Meta["instance"], t.Target, t.Source, t.Weight, ew, h)
}

// apiOverride is a weight override as the admin API shows it.
type apiOverride struct {
	ID     string            `json:"id"`
	Target *string           `json:"target"`
	Tags   []string          `json:"tags"`
	Meta   map[string]string `json:"meta"`
	Weight *int              `json:"weight"`
	Share  *float64          `json:"share"`
}

// apiHealth is a target's entry in GET /upstreams/{u}/health.
type apiHealth struct {
	Target string `json:"target"`
	Health string `json:"health"`
	Data   struct {
		Source string `json:"source"`
		Mark   string `json:"mark"`
	} `json:"data"`
}

// targets lists upstream web's targets as the client sidecar sees them,
// keyed by instance (the meta instance=ID the instance sidecars register).
func (c *cluster) targets() map[string]apiTarget {
	c.t.Helper()
	var page struct{ Data []apiTarget }
	c.admin(http.MethodGet, "/upstreams/web/targets", nil, http.StatusOK, &page)
	out := map[string]apiTarget{}
	for _, t := range page.Data {
		out[t.Meta["instance"]] = t
	}
	return out
}

// effectiveShares returns each instance's share of the summed effective
// weights of its healthy targets, as the admin API reports them.
func effectiveShares(ts map[string]apiTarget) map[string]float64 {
	sum := 0
	for _, t := range ts {
		if t.EffectiveWeight != nil && t.Healthy != nil && *t.Healthy {
			sum += *t.EffectiveWeight
		}
	}
	out := map[string]float64{}
	for name, t := range ts {
		if t.EffectiveWeight != nil && t.Healthy != nil && *t.Healthy && sum > 0 {
			out[name] = float64(*t.EffectiveWeight) / float64(sum)
		}
	}
	return out
}

// retries is the client sidecar's count of upstream attempts beyond the
// first for service web (0 before the first).
func (c *cluster) retries() int {
	n, _ := c.metric("outrigger_retries_total", "service", "web", "upstream", "web")
	return int(n)
}

// sequential sends n GETs to url one after the other, as fast as they
// complete, for at most d; it returns the stats like a load.
func sequential(url string, n int, d time.Duration) loadStats {
	l := &load{url: url, client: &http.Client{Timeout: 15 * time.Second}, byInstance: map[string]int{}}
	defer l.client.CloseIdleConnections()
	end := time.Now().Add(d)
	for i := 0; i < n && time.Now().Before(end); i++ {
		instance, err := l.get()
		l.done++
		if err != nil {
			l.failed++
			if len(l.errors) < 10 {
				l.errors = append(l.errors, err.Error())
			}
			continue
		}
		l.byInstance[instance]++
	}
	return l.Stats()
}

// checkSplit sends n sequential requests through the client sidecar and
// checks that each instance served exactly want[instance] of them.
//
// Why exactly: round robin repeats one cycle of picks whose length is the
// sum of the reduced effective weights, and any run of consecutive picks
// spanning whole cycles holds each target exactly as often as its weight
// says, wherever it starts (rebuilds that keep the weights keep the
// phase). n must be a multiple of the cycle. Sequential requests take
// consecutive picks, one each, unless the sidecar retries (a retry takes
// a pick of its own): each count may then be off by as many as the
// retries the sidecar counted meanwhile, and no more. An instance wanted
// at 0 is out of the cycle and must get nothing at all.
func (c *cluster) checkSplit(what, path string, n int, want map[string]int) loadStats {
	c.t.Helper()
	before := c.retries()
	start := time.Now()
	st := sequential(c.ProxyURL+path, n, 30*time.Second)
	took := time.Since(start)
	retried := c.retries() - before
	c.t.Logf("%s: %d sequential requests in %s, %d retried: %v (want %v)", what, st.Done, took.Round(time.Millisecond), retried, st.ByInstance, want)
	if st.Done != n || st.Failed > 0 {
		c.t.Fatalf("%s: %d of %d requests done, %d failed: %v", what, st.Done, n, st.Failed, st.Errors)
	}
	for name, got := range st.ByInstance {
		if _, ok := want[name]; !ok {
			c.t.Errorf("%s: %s served %d requests, want none", what, name, got)
		}
	}
	for name, w := range want {
		tol := retried
		if w == 0 {
			tol = 0 // out of the cycle: not even a retry may pick it
		}
		if got := st.ByInstance[name]; got < w-tol || got > w+tol {
			c.t.Errorf("%s: %s served %d of %d requests, want exactly %d (±%d)", what, name, got, n, w, tol)
		}
	}
	return st
}
