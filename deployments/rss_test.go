package deployments

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/internal/kubetest"
)

// The load that sizes the outrigger container's memory request (the
// figures are quoted in deployment.yaml's resources comment).
const (
	rssWorkers     = 32
	rssDuration    = 5 * time.Second
	rssMaxRequests = 200_000
)

// TestOutriggerPeakRSSFitsMemoryRequest runs the outrigger binary of this
// tree on the ConfigMap's configuration (Kubernetes discovery of two api
// instances, registration of the pod in Consul, active checks, access log)
// against a real kube-apiserver and a real Consul agent, drives a bounded load through it, and
// checks that the process's peak resident memory (VmHWM) stays within the
// Deployment's memory request.
func TestOutriggerPeakRSSFitsMemoryRequest(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the process's resident memory from /proc (Linux only)")
	}
	m := loadManifests(t)
	request := m.memoryRequest(t)
	data, env := m.sidecarConfig(t)
	agent := consultest.Start(t)

	// The app beside the sidecar, and two api instances: the Service's
	// EndpointSlice in a real kube-apiserver, the instances in network
	// namespaces of their own (the API refuses loopback endpoints).
	app := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`) }))
	cluster := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	port, pname := int32(kubetest.OriginPort), "http"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "api-1", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
	}
	for i := range 2 {
		o := kubetest.StartOrigin(t, demo, fmt.Sprintf("api-%d", i))
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{o.IP}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cluster.Discovery.EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The pod's environment, pointed at loopback; the app's port is the
	// one this test got.
	_, appPort, _ := net.SplitHostPort(app)
	cfg := strings.ReplaceAll(string(data), "127.0.0.1:9000", "127.0.0.1:"+appPort)
	// The pod's service account, as a kubeconfig (the binary reads
	// in-cluster credentials from a fixed path only).
	withKubeconfig := regexp.MustCompile(`(?m)^( +)port: http$`).ReplaceAllString(cfg,
		"${0}\n${1}kubeconfig: "+cluster.Kubeconfig("admin", "default"))
	if withKubeconfig == cfg {
		t.Fatal("the ConfigMap's kubernetes discovery block is not where this test expects it")
	}
	cfg = withKubeconfig
	cfgPath := filepath.Join(t.TempDir(), "outrigger.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env["CONSUL_ADDR"] = agent.HTTPAddr
	env["POD_IP"] = "127.0.0.1"
	env["OUTRIGGER_ADMIN_TOKEN"] = "rss-token"
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)

	bin := filepath.Join(t.TempDir(), "outrigger")
	build := exec.Command("go", "build", "-trimpath", "-tags=grpcnotrace", "-ldflags=-s -w", "-o", bin, "./cmd/outrigger")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--proxy-listen", proxyAddr, "--admin-listen", adminAddr)
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &tailWriter{max: 64 << 10, buf: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("outrigger log (tail):\n%s", logs.String())
		}
	})

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: rssWorkers}}
	waitUntil(t, 30*time.Second, "outrigger ready with both api instances discovered", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer rss-token")
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `outrigger_upstream_targets{state="eligible",upstream="api"} 2`) &&
			status(c, "http://"+adminAddr+"/ready") == http.StatusOK
	})

	// The bounded load: rssWorkers keep-alive clients, rssDuration, at
	// most rssMaxRequests.
	var sent, failed atomic.Int64
	deadline := time.Now().Add(rssDuration)
	var wg sync.WaitGroup
	for range rssWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && sent.Add(1) <= rssMaxRequests {
				if status(c, "http://"+proxyAddr+"/api/rss") != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	n := min(sent.Load(), rssMaxRequests)
	hwm, rss := procMemory(t, cmd.Process.Pid)
	t.Logf("%d requests in %s over %d connections (%d failed): outrigger peak RSS (VmHWM) %s, RSS now %s; memory request %s",
		n, rssDuration, rssWorkers, failed.Load(), mib(hwm), mib(rss), mib(request))
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed", failed.Load(), n)
	}
	if hwm > request {
		t.Errorf("outrigger peaked at %s, above the Deployment's memory request %s: resize it (and its comment)", mib(hwm), mib(request))
	}
}

// procMemory reads VmHWM and VmRSS (bytes) of a process.
func procMemory(t *testing.T, pid int) (hwm, rss int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", k, v)
		}
		if k == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	return hwm, rss
}

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// status GETs url and returns the status code, or 0 on error.
func status(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tailWriter keeps roughly the last max bytes written (the access log of
// a load run is large).
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf *bytes.Buffer
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if over := w.buf.Len() - w.max; over > 0 {
		w.buf.Next(over)
	}
	return len(p), nil
}
