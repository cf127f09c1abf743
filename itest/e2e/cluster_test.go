package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
)

// adminToken is the sidecars' admin token (OUTRIGGER_ADMIN_TOKEN).
const adminToken = "e2e-admin-token"

// Timeouts of the setup phases.
const (
	startTimeout    = 60 * time.Second // one container created and started
	consulReady     = 30 * time.Second // leader elected
	registerTimeout = 30 * time.Second // every instance passing in Consul
	discoverTimeout = 30 * time.Second // the client sidecar sees them all
)

// clusterSpec shapes a cluster.
type clusterSpec struct {
	// Instances is the number of web instances (web-1 ... web-N).
	Instances int
	// CheckTTL is the instance sidecars' Consul TTL: they probe the
	// instance's /health every CheckTTL/3.
	CheckTTL string
	// ShutdownDelay is the instances' lame-duck time after SIGTERM.
	ShutdownDelay string
	// Canaries is how many instances, the last ones, register as version
	// v2 (Consul service meta version=v2); the others register v1. With 0
	// the instance sidecars run the compose configuration unchanged (meta
	// instance=ID only).
	Canaries int
	// ClientState gives the client sidecar an admin state file on a Docker
	// volume (clientStateFile), so its admin changes survive a restart.
	ClientState bool
	// ClientCheckTTL is the client pod's Consul TTL; "" keeps the
	// configuration's default (10s).
	ClientCheckTTL string
}

// cluster is Consul, web instance pods and a client pod on a private
// network. A pod is, as in the compose example, an Outrigger sidecar that
// owns the network namespace and an application container that joins it.
type cluster struct {
	t   *testing.T
	img imageSet
	net *testcontainers.DockerNetwork
	// podIPs hands out the pods' fixed addresses: the upper half of the
	// network's subnet (Docker assigns the others from the lower half).
	podIPs netip.Addr
	consul testcontainers.Container
	// ConsulURL is Consul's HTTP API as published on 127.0.0.1.
	ConsulURL string
	Web       []*pod
	Client    *pod
	// ProxyURL and AdminURL are the client sidecar's listeners.
	ProxyURL, AdminURL string
}

// pod is an Outrigger sidecar and its application.
type pod struct {
	Name string
	// Sidecar owns the pod's network namespace; App joins it.
	Sidecar testcontainers.Container
	App     testcontainers.Container
	// IP is the pod's address on the cluster network, fixed before the
	// sidecar starts so that it can register it.
	IP string
	// StateVolume is the Docker volume holding the sidecar's admin state
	// file ("" without one).
	StateVolume string
	// AppURL and AdminURL are the application's port and the sidecar's
	// admin listener, published on 127.0.0.1.
	AppURL, AdminURL string
}

// Target is the pod's address as the client sidecar knows it.
func (p *pod) Target() string { return p.IP + ":9000" }

// newCluster starts everything and returns once the client sidecar has
// discovered every instance.
func newCluster(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	c := &cluster{t: t, img: images(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.newNetwork(ctx)
	nw := c.net

	c.consul = c.start(ctx, "consul", testcontainers.ContainerRequest{
		Image:          c.img.Consul,
		Networks:       []string{nw.Name},
		NetworkAliases: map[string][]string{nw.Name: {"consul"}},
		ExposedPorts:   []string{"8500/tcp"},
	})
	c.ConsulURL = c.published(ctx, c.consul, "8500/tcp")
	waitFor(t, consulReady, "a Consul leader", func() bool {
		var leader string
		return getJSON(c.ConsulURL+"/v1/status/leader", &leader) == nil && leader != ""
	})

	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	instanceCfg := filepath.Join(root, "deployments", "compose", "instance-sidecar.yaml")
	clientCfg := filepath.Join(root, "deployments", "compose", "client-sidecar.yaml")
	if spec.Canaries > 0 {
		instanceCfg = deriveConfig(t, instanceCfg, []string{"register", "consul", "service", "meta", "version"}, "${SERVICE_VERSION:-v1}")
	}
	for i := 1; i <= spec.Instances; i++ {
		name := fmt.Sprintf("web-%d", i)
		sidecarEnv := map[string]string{"SERVICE_NAME": "web", "SERVICE_ID": name, "CHECK_TTL": spec.CheckTTL}
		if i > spec.Instances-spec.Canaries {
			sidecarEnv["SERVICE_VERSION"] = "v2"
		}
		c.Web = append(c.Web, c.startPod(ctx, name, instanceCfg,
			map[string]string{"DEMO_NAME": "web", "DEMO_INSTANCE": name, "DEMO_SHUTDOWN_DELAY": spec.ShutdownDelay},
			sidecarEnv, nil))
	}
	clientEnv := map[string]string{"SERVICE_NAME": "client", "SERVICE_ID": "client-1", "UPSTREAM_SERVICE": "web", "ACCESS_LOG": "false"}
	if spec.ClientCheckTTL != "" {
		clientEnv["CHECK_TTL"] = spec.ClientCheckTTL
	}
	var clientMod func(*testcontainers.ContainerRequest)
	var stateVolume string
	if spec.ClientState {
		clientCfg = deriveConfig(t, clientCfg, []string{"admin", "state_file"}, clientStateFile)
		stateVolume = c.newVolume(ctx, "client-state")
		clientMod = func(req *testcontainers.ContainerRequest) { withStateVolume(req, stateVolume) }
	}
	c.Client = c.startPod(ctx, "client", clientCfg,
		map[string]string{"DEMO_NAME": "client", "DEMO_INSTANCE": "client-1"},
		clientEnv, clientMod)
	c.Client.StateVolume = stateVolume
	c.ProxyURL = c.published(ctx, c.Client.Sidecar, "8000/tcp")
	c.AdminURL = c.Client.AdminURL

	// A sidecar starts before its application, so its first probe of the
	// application fails; the next comes CheckTTL/3 later. Every pod is
	// started before waiting, so those waits overlap.
	for _, p := range append(slices.Clone(c.Web), c.Client) {
		waitFor(t, startTimeout, p.Name+"'s sidecar to be ready (/ready: serving, and the instance healthy)", func() bool {
			return status(p.AdminURL+"/ready", "") == http.StatusOK
		})
	}

	waitFor(t, registerTimeout, fmt.Sprintf("%d passing web instances in Consul", spec.Instances), func() bool {
		return len(c.passing("web")) == spec.Instances
	})
	waitFor(t, discoverTimeout, fmt.Sprintf("the client sidecar to see %d eligible web targets", spec.Instances), func() bool {
		n, ok := c.metric("outrigger_upstream_targets", "upstream", "web", "state", "eligible")
		return ok && int(n) == spec.Instances
	})
	return c
}

// startPod starts an Outrigger sidecar on the cluster network at a fixed
// address (it owns the pod's network namespace, publishes the pod's ports
// and registers the pod from cfgPath), then the application in its
// namespace, as the kubelet starts a native sidecar before the app. It
// does not wait for the pod to be ready. mod, if not nil, adjusts the
// sidecar's request last.
func (c *cluster) startPod(ctx context.Context, name, cfgPath string, appEnv, sidecarEnv map[string]string, mod func(*testcontainers.ContainerRequest)) *pod {
	c.t.Helper()
	p := &pod{Name: name, IP: c.nextPodIP()}
	env := map[string]string{
		"CONSUL_ADDR":           "consul:8500",
		"SERVICE_ADDRESS":       p.IP,
		"OUTRIGGER_ADMIN_TOKEN": adminToken,
		"LOG_LEVEL":             "debug",
		"DRAIN_TIMEOUT":         "5s",
	}
	for k, v := range sidecarEnv {
		env[k] = v
	}
	req := testcontainers.ContainerRequest{
		Image:          c.img.Outrigger,
		Env:            env,
		Networks:       []string{c.net.Name},
		NetworkAliases: map[string][]string{c.net.Name: {name}},
		EndpointSettingsModifier: func(eps map[string]*network.EndpointSettings) {
			if ep := eps[c.net.Name]; ep != nil {
				ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(p.IP)}
			}
		},
		// The application's port lives in this namespace: publish it here.
		ExposedPorts: []string{"8000/tcp", "8001/tcp", "9000/tcp"},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.Binds = []string{cfgPath + ":/etc/outrigger/outrigger.yaml:ro"}
		},
	}
	if mod != nil {
		mod(&req)
	}
	p.Sidecar = c.start(ctx, name+"-sidecar", req)
	if got := c.ipOf(ctx, p.Sidecar); got != p.IP {
		c.t.Fatalf("%s got address %s, want %s", name, got, p.IP)
	}
	p.AppURL = c.published(ctx, p.Sidecar, "9000/tcp")
	p.AdminURL = c.published(ctx, p.Sidecar, "8001/tcp")
	p.App = c.start(ctx, name, testcontainers.ContainerRequest{
		Image: c.img.Demo,
		Env:   appEnv,
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode("container:" + p.Sidecar.GetContainerID())
		},
	})
	return p
}

// newNetwork creates the cluster network on a subnet Docker picks, with
// Docker's own assignments confined to the lower half so the pods can
// have fixed addresses from the upper half. (Docker accepts fixed
// addresses only on a network created with an explicit subnet, hence the
// probe network that learns a free one.)
func (c *cluster) newNetwork(ctx context.Context) {
	c.t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		probe, err := tcnetwork.New(ctx, tcnetwork.WithLabels(runLabels()))
		if err != nil {
			c.t.Fatalf("network: %v", err)
		}
		ins, err := provider.Client().NetworkInspect(ctx, probe.ID, client.NetworkInspectOptions{})
		_ = probe.Remove(context.Background())
		if err != nil {
			c.t.Fatalf("inspect network: %v", err)
		}
		var subnet netip.Prefix
		for _, cfg := range ins.Network.IPAM.Config {
			if cfg.Subnet.Addr().Is4() {
				subnet = cfg.Subnet.Masked()
			}
		}
		if !subnet.IsValid() || subnet.Bits() > 28 {
			c.t.Fatalf("network %s: no usable IPv4 subnet (%v)", probe.Name, ins.Network.IPAM.Config)
		}
		lower := netip.PrefixFrom(subnet.Addr(), subnet.Bits()+1)
		nw, err := tcnetwork.New(ctx, tcnetwork.WithLabels(runLabels()), tcnetwork.WithIPAM(&network.IPAM{
			Driver: "default",
			Config: []network.IPAMConfig{{Subnet: subnet, IPRange: lower}},
		}))
		testcontainers.CleanupNetwork(c.t, nw)
		if err != nil {
			lastErr = err // another network took the subnet meanwhile
			continue
		}
		c.net = nw
		// The first address of the upper half, then one per pod.
		b := subnet.Addr().As4()
		half := uint32(1) << (32 - subnet.Bits() - 1)
		v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) + half + 10
		c.podIPs = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		return
	}
	c.t.Fatalf("network with a fixed subnet: %v", lastErr)
}

// nextPodIP returns the next fixed pod address.
func (c *cluster) nextPodIP() string {
	ip := c.podIPs
	c.podIPs = ip.Next()
	return ip.String()
}

// start creates and starts a container hardened as the compose example's
// (read-only root, no capabilities, no privilege escalation), publishing
// its exposed ports on 127.0.0.1 only, and removes it when the test ends
// (logging its output first when the test failed).
func (c *cluster) start(ctx context.Context, name string, req testcontainers.ContainerRequest) testcontainers.Container {
	c.t.Helper()
	req.Name = fmt.Sprintf("outrigger-e2e-%s-%s-%s", runID, sanitize(c.t.Name()), name)
	req.Labels = runLabels()
	userMod := req.HostConfigModifier
	req.HostConfigModifier = func(hc *container.HostConfig) {
		hc.ReadonlyRootfs = true
		hc.CapDrop = []string{"ALL"}
		hc.SecurityOpt = []string{"no-new-privileges:true"}
		hc.PortBindings = network.PortMap{}
		for _, p := range req.ExposedPorts {
			hc.PortBindings[network.MustParsePort(p)] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
		}
		if userMod != nil {
			userMod(hc)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	ctr, err := testcontainers.GenericContainer(sctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		Logger:           tclog.TestLogger(c.t),
	})
	// Stop at once at the end: graceful stops are what the tests exercise,
	// not what the cleanup needs.
	testcontainers.CleanupContainer(c.t, ctr, testcontainers.StopTimeout(0))
	if ctr != nil {
		c.t.Cleanup(func() {
			if c.t.Failed() {
				c.t.Logf("--- %s log (last lines):\n%s", name, tail(ctr, 40))
			}
		})
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	return ctr
}

// sanitize makes a test name usable in a container name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '-'
	}, s)
}

// tail returns the last n lines of a container's output.
func tail(ctr testcontainers.Container, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 4<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// published is the http://127.0.0.1:PORT URL of a container port.
func (c *cluster) published(ctx context.Context, ctr testcontainers.Container, port string) string {
	c.t.Helper()
	p, err := ctr.MappedPort(ctx, port)
	if err != nil {
		c.t.Fatalf("published port %s: %v", port, err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p.Num())
}

// ipOf is the container's address on the cluster network.
func (c *cluster) ipOf(ctx context.Context, ctr testcontainers.Container) string {
	c.t.Helper()
	ins, err := ctr.Inspect(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	ep := ins.NetworkSettings.Networks[c.net.Name]
	if ep == nil || !ep.IPAddress.IsValid() {
		c.t.Fatalf("%s has no address on %s", ins.Name, c.net.Name)
	}
	return ep.IPAddress.String()
}

// partition disconnects a pod (its sidecar, which owns the namespace) from
// the cluster network: its packets are dropped from then on, nothing is
// reset.
func (c *cluster) partition(p *pod) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := provider.Client().NetworkDisconnect(ctx, c.net.ID, client.NetworkDisconnectOptions{Container: p.Sidecar.GetContainerID()}); err != nil {
		c.t.Fatalf("disconnect %s: %v", p.Name, err)
	}
}

// passing returns the IDs of the passing instances of service in Consul.
func (c *cluster) passing(service string) []string {
	var entries []struct {
		Service struct{ ID, Address string }
	}
	if err := getJSON(c.ConsulURL+"/v1/health/service/"+service+"?passing=true", &entries); err != nil {
		return nil
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	return ids
}

// metric reads one sample from the client sidecar's /metrics; labels are
// name/value pairs that must all match.
func (c *cluster) metric(name string, labels ...string) (float64, bool) {
	req, err := http.NewRequest(http.MethodGet, c.AdminURL+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := quick.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	return findSample(string(b), name, labels...)
}

// findSample finds name{labels...} in a Prometheus text exposition.
func findSample(body, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		got := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			for _, kv := range splitLabels(rest[1:end]) {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = strings.Trim(v, `"`)
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		return v, true
	}
	return 0, false
}

// splitLabels splits `a="x",b="y"` at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// quick is the client for polls: short timeouts, no keep-alive reuse
// across containers that come and go.
var quick = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// status GETs url (with the admin token when given) and returns the
// status code, or 0 when the request failed.
func status(url, token string) int {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := quick.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// post POSTs to url and returns the status code, or 0.
func post(url string) int {
	resp, err := quick.Post(url, "application/json", nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(url string, v any) error {
	resp, err := quick.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}
