// Package consultest runs a real Consul agent for tests.
//
// Contract:
//
//   - Start launches `consul agent -dev` bound to 127.0.0.1 only, on
//     kernel-chosen free ports for HTTP, DNS (UDP and TCP), Serf LAN and WAN
//     (UDP and TCP) and server RPC; gRPC and gRPC-TLS are disabled. It
//     returns once a leader is elected and the agent's node is in the
//     catalog with a passing serfHealth check, or fails the test (deadline
//     30s per attempt, at most 3 attempts on fresh ports when the agent dies
//     at startup, e.g. because another process took a port).
//   - The binary is $OUTRIGGER_CONSUL_BIN, else <repo root>/bin/consul,
//     the repo root (testbin.RepoRoot) being the nearest directory above the
//     working directory holding go.mod. A missing binary fails the test
//     with one line telling to run `make consul`.
//   - Stop (SIGTERM, then SIGKILL after 10s), Kill (SIGKILL) and Restart
//     (stop if running, start again on the SAME ports, wait for readiness)
//     support outage tests. A dev agent keeps its state in memory only, so a
//     restarted agent starts empty, with raft indexes starting over.
//   - The agent is stopped by t.Cleanup. Its log goes to a file in
//     t.TempDir(); its last lines are logged when startup fails.
//   - On Linux the agent gets SIGKILL from the kernel if the test binary
//     dies without running its cleanups (Pdeathsig).
//   - Nothing is shared between Agents; no package state.
package consultest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/internal/testbin"
)

// BinEnv names the environment variable that overrides the binary path.
const BinEnv = "OUTRIGGER_CONSUL_BIN"

const (
	readyTimeout  = 30 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 3
	clientTimeout = 30 * time.Second
)

// Ports are the agent's listening ports on 127.0.0.1.
type Ports struct {
	HTTP, DNS, SerfLAN, SerfWAN, Server int
}

// Agent is a running (or stopped) dev agent.
type Agent struct {
	// HTTPAddr is the HTTP API's host:port.
	HTTPAddr string
	// DNSAddr is the DNS interface's host:port (UDP and TCP).
	DNSAddr string
	// Client talks to HTTPAddr; its HTTP timeout is 30s, so blocking
	// queries through it must wait less.
	Client *api.Client
	// Ports are the ports in use; Restart reuses them.
	Ports Ports
	// Node is the agent's node name.
	Node string

	t       testing.TB
	bin     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a dev agent and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	a := &Agent{
		t:       t,
		bin:     bin,
		logPath: filepath.Join(dir, "consul.log"),
		Node:    "outrigger-test",
	}
	t.Cleanup(a.Stop)

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		ports, err := freePorts()
		if err != nil {
			t.Fatalf("consultest: choosing free ports: %v", err)
		}
		a.setPorts(ports)
		if lastErr = a.start(); lastErr == nil {
			return a
		}
		a.Kill()
		t.Logf("consultest: attempt %d: %v", attempt, lastErr)
	}
	a.logTail()
	t.Fatalf("consultest: consul agent did not start after %d attempts: %v", startAttempts, lastErr)
	return nil
}

// Binary returns the consul binary's path or fails t.
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, "consul", BinEnv)
}

func (a *Agent) setPorts(p Ports) {
	a.Ports = p
	a.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTP))
	a.DNSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.DNS))
	c, err := api.NewClient(&api.Config{
		Address:    a.HTTPAddr,
		Scheme:     "http",
		HttpClient: &http.Client{Timeout: clientTimeout},
	})
	if err != nil {
		a.t.Fatalf("consultest: api client: %v", err)
	}
	a.Client = c
}

// start launches the process and waits until it is ready.
func (a *Agent) start() error {
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	p := a.Ports
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-node", a.Node,
		"-http-port", strconv.Itoa(p.HTTP),
		"-dns-port", strconv.Itoa(p.DNS),
		"-serf-lan-port", strconv.Itoa(p.SerfLAN),
		"-serf-wan-port", strconv.Itoa(p.SerfWAN),
		"-server-port", strconv.Itoa(p.Server),
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-https-port", "-1",
		"-log-level", "info",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	setParentDeathSignal(cmd)
	// No update checks or telemetry calls home: loopback traffic only.
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", a.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	return a.waitReady(done)
}

// waitReady polls until a leader is elected and the node is registered with
// a passing serfHealth check.
func (a *Agent) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-done:
			return errors.New("consul agent exited during startup")
		case <-tick.C:
		}
		if last = a.ready(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		}
	}
}

func (a *Agent) ready() error {
	leader, err := a.Client.Status().Leader()
	if err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	checks, _, err := a.Client.Health().Node(a.Node, nil)
	if err != nil {
		return err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" && c.Status == api.HealthPassing {
			return nil
		}
	}
	return errors.New("node not in the catalog with a passing serfHealth yet")
}

// Stop stops the agent gracefully (SIGTERM, SIGKILL after 10s). It is a
// no-op when the agent is not running.
func (a *Agent) Stop() {
	a.signal(syscall.SIGTERM, stopTimeout)
}

// Kill kills the agent (SIGKILL) and waits for it to exit.
func (a *Agent) Kill() {
	a.signal(syscall.SIGKILL, stopTimeout)
}

func (a *Agent) signal(sig syscall.Signal, wait time.Duration) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd, a.done = nil, nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	_ = cmd.Process.Kill()
	t.Reset(wait)
	select {
	case <-done:
	case <-t.C:
		a.t.Errorf("consultest: consul agent (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// Restart stops the agent if it runs and starts it again on the same HTTP
// and DNS ports (the ones clients know; Serf and server ports are chosen
// again when another process took one meanwhile).
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	for attempt := 1; ; attempt++ {
		err := a.start()
		if err == nil {
			return
		}
		a.Kill()
		if attempt == startAttempts {
			a.logTail()
			a.t.Fatalf("consultest: restart on the same ports: %v", err)
		}
		// While the agent was down the kernel may have handed one of its
		// ports to another process. Clients know only the HTTP and DNS
		// ports: keep those, take fresh ones for Serf and the server.
		a.t.Logf("consultest: restart attempt %d: %v", attempt, err)
		fresh, perr := freePorts()
		if perr != nil {
			a.t.Fatalf("consultest: %v", perr)
		}
		p := a.Ports
		p.SerfLAN, p.SerfWAN, p.Server = fresh.SerfLAN, fresh.SerfWAN, fresh.Server
		a.setPorts(p)
	}
}

// logTail logs the end of the agent's log.
func (a *Agent) logTail() {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return
	}
	const max = 8 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	a.t.Logf("consultest: consul log tail:\n%s", b)
}

// freePorts asks the kernel for five distinct ports. The DNS and Serf ports
// are free for both TCP and UDP. All are held until every one is chosen, so
// they are distinct; they are released before consul binds them.
func freePorts() (Ports, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	pick := func(udpToo bool) (int, error) {
		for range 50 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			port := l.Addr().(*net.TCPAddr).Port
			closers = append(closers, func() { l.Close() })
			if !udpToo {
				return port, nil
			}
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // keep the TCP listener so this port is not offered again
			}
			closers = append(closers, func() { u.Close() })
			return port, nil
		}
		return 0, errors.New("no port free for both TCP and UDP after 50 tries")
	}
	var p Ports
	var err error
	for _, f := range []struct {
		dst    *int
		udpToo bool
	}{
		{&p.HTTP, false}, {&p.DNS, true}, {&p.SerfLAN, true}, {&p.SerfWAN, true}, {&p.Server, false},
	} {
		if *f.dst, err = pick(f.udpToo); err != nil {
			return Ports{}, err
		}
	}
	return p, nil
}
