package kubetest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/testbin"
)

// OriginPort is the port every origin listens on, inside its own network
// namespace.
const OriginPort = 8080

// Origin is an HTTP server (cmd/demo-service) in a network namespace of its
// own, reachable from the test's namespace at IP over a veth pair with a
// /30 of its own. The API server refuses loopback addresses in
// EndpointSlices; this address is what the tests write there instead, and
// the only address other than loopback that they send traffic to.
//
// Every answer carries the header X-Instance: Name.
type Origin struct {
	Name string
	// IP is the origin's address; Addr is IP:OriginPort.
	IP   string
	Addr string
	// NetNS is the namespace's name (unique per origin and test run).
	NetNS string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	// args start the origin again (Restart).
	args []string
}

// DemoService builds cmd/demo-service into a temporary directory and
// returns the binary's path.
func DemoService(t testing.TB) string {
	t.Helper()
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "demo-service")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/demo-service")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubetest: building demo-service: %v\n%s", err, out)
	}
	return bin
}

// StartOrigin creates a network namespace and a veth pair, and starts the
// demo service bin (DemoService) in it as name. Everything is removed by
// t.Cleanup. It needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip(8).
func StartOrigin(t testing.TB, bin, name string) *Origin {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("kubetest: ip(8) not found on PATH: install iproute2 (.ci/run does)")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := fmt.Sprintf("%08x", binary.BigEndian.Uint32(rnd[:]))
	o := &Origin{Name: name, NetNS: "okt" + tag, t: t, done: make(chan struct{})}
	host, peer := "okt"+tag+"h", "okt"+tag+"n"
	hostIP, peerIP := o.pickSubnet()
	o.IP, o.Addr = peerIP, net.JoinHostPort(peerIP, strconv.Itoa(OriginPort))
	t.Cleanup(func() {
		o.Stop()
		_ = exec.Command("ip", "netns", "del", o.NetNS).Run()
		_ = exec.Command("ip", "link", "del", host).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", o.NetNS},
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", o.NetNS},
		{"addr", "add", hostIP + "/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", o.NetNS, "addr", "add", peerIP + "/30", "dev", peer},
		{"-n", o.NetNS, "link", "set", peer, "up"},
		{"-n", o.NetNS, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("kubetest: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	o.log = filepath.Join(t.TempDir(), name+".log")
	o.args = []string{"netns", "exec", o.NetNS, bin, "--name", "origin", "--instance", name, "--listen", o.Addr}
	o.Start()
	return o
}

// pickSubnet chooses a /30 in 10.213.0.0/16 that no interface uses.
func (o *Origin) pickSubnet() (hostIP, peerIP string) {
	o.t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		o.t.Fatalf("kubetest: ip addr show: %v", err)
	}
	for range 100 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		third, fourth := int(b[0]), int(b[1])&^3
		prefix := fmt.Sprintf("10.213.%d.", third)
		used := false
		for i := 0; i < 4; i++ {
			if strings.Contains(string(out), " "+prefix+strconv.Itoa(fourth+i)+"/") {
				used = true
			}
		}
		if !used {
			return prefix + strconv.Itoa(fourth+1), prefix + strconv.Itoa(fourth+2)
		}
	}
	o.t.Fatal("kubetest: no free /30 in 10.213.0.0/16 after 100 tries")
	return "", ""
}

// Start starts the origin process (again) and waits until it answers.
func (o *Origin) Start() {
	o.t.Helper()
	logf, err := os.OpenFile(o.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		o.t.Fatal(err)
	}
	cmd := exec.Command("ip", o.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		o.t.Fatalf("kubetest: starting origin %s: %v", o.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	o.cmd, o.done = cmd, done
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			o.t.Fatalf("kubetest: origin %s exited:\n%s", o.Name, tail(o.log))
		default:
		}
		if resp, err := hc.Get("http://" + o.Addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	o.t.Fatalf("kubetest: origin %s did not answer at %s:\n%s", o.Name, o.Addr, tail(o.log))
}

// Stop stops the origin process (SIGKILL: ip netns exec execs the demo
// service, so the signal reaches it).
func (o *Origin) Stop() {
	if o.cmd == nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-o.done:
	case <-time.After(stopTimeout):
		o.t.Errorf("kubetest: origin %s did not exit", o.Name)
	}
	o.cmd = nil
}
