package itest

// The harness: TestMain builds the binary once; every test starts its own
// gateway processes on kernel-chosen ports, so tests are independent.

import (
	"bufio"
	"bytes"

	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the outrigger binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outrigger-itest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "outrigger")
	cmd := exec.Command("go", "build", "-tags=grpcnotrace", "-o", binary, "../cmd/outrigger")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build outrigger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address the kernel just handed out.
func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct loopback addresses the kernel just handed
// out: every listener stays open until all are chosen, so the kernel cannot
// hand the same port out twice (a proxy and an admin listener on one port
// would refuse to start).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// gateway is one running outrigger process.
type gateway struct {
	t         testing.TB
	cmd       *exec.Cmd
	ProxyAddr string
	AdminAddr string
	cfgPath   string
	mu        sync.Mutex
	logs      []map[string]any
	raw       bytes.Buffer
	exited    chan struct{}
	exitErr   error

	// Extra holds the addresses of the listeners a gatewayOpts asked for
	// besides ProxyAddr; listen and proxyExtra shape the proxy section.
	Extra      []string
	listen     string
	proxyExtra string
	adminExtra string
	drain      string // proxy.drain_timeout
}

// startGateway writes cfg (a YAML body without listeners) and runs the
// binary on it; it returns once the admin listener answers.
func startGateway(t testing.TB, cfg string, extraArgs ...string) *gateway {
	t.Helper()
	return startGatewayOpts(t, gatewayOpts{}, cfg, extraArgs...)
}

// gatewayOpts shape the proxy section startGatewayOpts writes.
type gatewayOpts struct {
	// ExtraListeners is how many more proxy addresses to choose (in
	// gateway.Extra).
	ExtraListeners int
	// Listen returns the YAML value of proxy.listen for the chosen
	// addresses; nil: ProxyAddr alone.
	Listen func(proxy string, extra []string) string
	// Proxy and Admin hold more lines of the proxy and admin sections,
	// each indented by two spaces.
	Proxy, Admin string
	// Drain is proxy.drain_timeout; "": 10s.
	Drain string
}

// startGatewayOpts is startGateway with o's proxy section.
func startGatewayOpts(t testing.TB, o gatewayOpts, cfg string, extraArgs ...string) *gateway {
	t.Helper()
	addrs := freeAddrs(t, 2+o.ExtraListeners)
	g := &gateway{t: t, ProxyAddr: addrs[0], AdminAddr: addrs[1], Extra: addrs[2:], exited: make(chan struct{}), proxyExtra: o.Proxy, adminExtra: o.Admin, drain: o.Drain}
	if g.drain == "" {
		g.drain = "10s"
	}
	g.listen = g.ProxyAddr
	if o.Listen != nil {
		g.listen = o.Listen(g.ProxyAddr, g.Extra)
	}
	g.cfgPath = filepath.Join(t.TempDir(), "outrigger.yaml")
	g.writeConfig(cfg)
	args := append([]string{"run", "--config", g.cfgPath}, extraArgs...)
	g.cmd = exec.Command(binary, args...)
	g.startLogged()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			g.mu.Lock()
			t.Logf("gateway log:\n%s", g.raw.String())
			g.mu.Unlock()
		}
	})
	waitFor(t, 10*time.Second, "admin listener", func() bool {
		select {
		case <-g.exited:
			t.Fatalf("outrigger exited early: %v\n%s", g.exitErr, g.rawLog())
		default:
		}
		resp, err := http.Get("http://" + g.AdminAddr + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

func (g *gateway) writeConfig(body string) {
	g.t.Helper()
	listen := g.listen
	if listen == "" {
		listen = g.ProxyAddr
	}
	full := fmt.Sprintf("proxy:\n  listen: %s\n  drain_timeout: %s\n%sadmin:\n  listen: %s\n%slog:\n  format: json\n  level: debug\n%s", listen, g.drain, g.proxyExtra, g.AdminAddr, g.adminExtra, body)
	tmp := g.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(full), 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, g.cfgPath); err != nil {
		g.t.Fatal(err)
	}
}

// startLogged starts g.cmd with its standard error read into g's log,
// and closes g.exited once the process has exited and every line it wrote
// is in the log: the pipe is read to its end before Wait, which closes it
// (a Wait racing the reader could drop the last lines, those a test reads
// after the exit: a deregistration, say).
func (g *gateway) startLogged() {
	g.t.Helper()
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	go func() {
		g.readLogs(stderr)
		g.exitErr = g.cmd.Wait()
		close(g.exited)
	}()
}

func (g *gateway) readLogs(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1<<20)
	for s.Scan() {
		line := s.Bytes()
		var m map[string]any
		_ = json.Unmarshal(line, &m)
		g.mu.Lock()
		g.raw.Write(line)
		g.raw.WriteByte('\n')
		if m != nil {
			g.logs = append(g.logs, m)
		}
		g.mu.Unlock()
	}
}

func (g *gateway) rawLog() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.raw.String()
}

// logsWhere returns the log lines whose message is msg.
func (g *gateway) logsWhere(msg string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, m := range g.logs {
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (g *gateway) signal(sig syscall.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (g *gateway) wait(d time.Duration) int {
	g.t.Helper()
	select {
	case <-g.exited:
	case <-time.After(d):
		g.t.Fatalf("outrigger did not exit within %s", d)
	}
	return g.cmd.ProcessState.ExitCode()
}

func (g *gateway) url(path string) string { return "http://" + g.ProxyAddr + path }

// generation reads the config generation from /status.
func (g *gateway) generation() float64 {
	g.t.Helper()
	var st struct {
		Gen float64 `json:"config_generation"`
	}
	getJSON(g.t, "http://"+g.AdminAddr+"/status", &st)
	return st.Gen
}

// ready reads the gateway's /ready: the status code and the message,
// failing the test when the code and the body's ready flag disagree.
func (g *gateway) ready(t testing.TB) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Ready   bool   `json:"ready"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Ready != (resp.StatusCode == http.StatusOK) {
		t.Fatalf("/ready %d with ready=%v", resp.StatusCode, body.Ready)
	}
	return resp.StatusCode, body.Message
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backend is a real HTTP server on loopback that names itself in every
// answer (header X-Backend and the body).
type backend struct {
	Name string
	Addr string
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	hits int
}

func startBackend(t testing.TB, name string, h http.Handler) *backend {
	t.Helper()
	return startBackendAt(t, name, "127.0.0.1:0", h)
}

func startBackendAt(t testing.TB, name, addr string, h http.Handler) *backend {
	t.Helper()
	var ln net.Listener
	var err error
	// The address may have just been released by a killed backend.
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{Name: name, Addr: ln.Addr().String(), ln: ln}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
		})
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(b.Close)
	return b
}

// Close stops the backend at once, dropping its connections.
func (b *backend) Close() { _ = b.srv.Close() }

func (b *backend) Hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

// get sends a GET and returns status, X-Backend and body.
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), string(body)
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// tryGet sends one GET and never fails the test (for goroutines): it
// returns the status, the X-Backend header, the body and the headers.
func tryGet(c *http.Client, url string) (status int, who, body string, hdr http.Header, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", nil, err
	}
	return resp.StatusCode, resp.Header.Get("X-Backend"), string(b), resp.Header, nil
}

// seqLoad is a bounded background load of sequential GETs.
type seqLoad struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	ok    int
	nBad  int
	bad   []string // the first failures
	byWho map[string]int
}

// startLoad sends sequential GETs to url every `every` until Stop, at most
// maxN of them and for at most maxD. A transport error or an answer other
// than 200 counts as a failure.
func startLoad(c *http.Client, url string, every time.Duration, maxN int, maxD time.Duration) *seqLoad {
	l := &seqLoad{stop: make(chan struct{}), done: make(chan struct{}), byWho: map[string]int{}}
	go func() {
		defer close(l.done)
		end := time.Now().Add(maxD)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < maxN && time.Now().Before(end); i++ {
			status, who, body, _, err := tryGet(c, url)
			l.mu.Lock()
			switch {
			case err != nil:
				l.nBad++
				if len(l.bad) < 5 {
					l.bad = append(l.bad, err.Error())
				}
			case status != http.StatusOK:
				l.nBad++
				if len(l.bad) < 5 {
					l.bad = append(l.bad, fmt.Sprintf("status %d: %s", status, body))
				}
			default:
				l.ok++
				l.byWho[who]++
			}
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

// Stop ends the load (once; later calls return the same counts) and
// returns its counts: the 200s, the failures, the first failures and the
// 200s per backend.
func (l *seqLoad) Stop() (ok, failed int, firstFailures []string, byWho map[string]int) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.nBad, l.bad, l.byWho
}

// Sent returns how many requests the load has sent so far.
func (l *seqLoad) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok + l.nBad
}

// TestHarnessKeepsTheLastLogLines: once a gateway process has exited, its
// log holds every line it wrote, the last ones too (the line a test reads
// after a SIGTERM). Short-lived processes that write a line and exit at
// once, many times over, because a reader racing Wait loses such a line
// only now and then.
func TestHarnessKeepsTheLastLogLines(t *testing.T) {
	for i := range 200 {
		g := &gateway{t: t, exited: make(chan struct{})}
		g.cmd = exec.Command("sh", "-c", `echo '{"message":"first"}' >&2; echo '{"message":"last"}' >&2`)
		g.startLogged()
		<-g.exited
		if n := len(g.logsWhere("last")); n != 1 {
			t.Fatalf("process %d: %d lines \"last\" in the log after its exit, want 1 (log %q)", i, n, g.rawLog())
		}
	}
}
