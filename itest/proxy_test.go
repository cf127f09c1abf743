package itest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// The exact file from the core issue, with the targets moved to ports the
// kernel handed out.
const exampleConfig = `upstreams:
  - name: example_upstream
    algorithm: round-robin
    targets:
      - target: %s
        weight: 300
      - target: %s
        weight: 100
services:
  - name: example_service
    host: example_upstream        # an upstream name, or a real host name / IP
    port: 80
    protocol: http
    path: /
    retries: 5
    connect_timeout: 2000         # milliseconds, as in Kong
    read_timeout: 60000
    write_timeout: 60000
    routes:
      - name: mock
        paths: [/mock]
        strip_path: true
`

func TestExampleConfigExactRatios(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	g := startGateway(t, fmt.Sprintf(exampleConfig, a.Addr, b.Addr))
	c := newClient()
	counts := map[string]int{}
	maxRun, run, prev := 0, 0, ""
	for i := 0; i < 400; i++ {
		status, who, body := get(t, c, g.url("/mock/headers"))
		if status != 200 {
			t.Fatalf("request %d: status %d: %s", i, status, body)
		}
		if !strings.HasSuffix(body, "GET /headers") {
			t.Fatalf("strip_path: backend saw %q, want /headers", body)
		}
		counts[who]++
		if who == prev {
			run++
		} else {
			run, prev = 1, who
		}
		maxRun = max(maxRun, run)
	}
	if counts["a"] != 300 || counts["b"] != 100 {
		t.Fatalf("400 sequential requests split %v, want exactly a=300 b=100", counts)
	}
	// Smooth: 3:1 never needs more than 3 in a row.
	if maxRun > 3 {
		t.Fatalf("longest run on one target = %d, want <= 3 (interleaved)", maxRun)
	}
	resp, err := http.Get("http://" + g.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`outrigger_requests_total{code="2xx",route="mock",service="example_service",target="%s",upstream="example_upstream"} 300`, a.Addr)
	if !strings.Contains(string(metrics), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}

func TestRouting(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	c := startBackend(t, "c", nil)
	host := startBackend(t, "host", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "host")
		fmt.Fprintf(w, "host=%s xff=%s proto=%s fwdhost=%s prefix=%s", r.Host, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Prefix"))
	}))
	g := startGateway(t, fmt.Sprintf(`
services:
  - name: sa
    url: http://%s/base
    routes:
      - {name: api, paths: [/api]}
      - {name: api-v2, paths: [/api/v2], strip_path: false}
  - name: sb
    url: http://%s
    routes:
      - {name: users, paths: ["~/users/\\d+$"], strip_path: false}
      - {name: hosted, hosts: ["*.example.com"], paths: [/api]}
  - name: sc
    url: http://%s
  - name: sh
    url: http://%s
    routes:
      - {name: echo-host, paths: [/echo], preserve_host: true}
      - {name: echo-nohost, paths: [/nohost]}
routes:
  - {name: deletes, service: sc, paths: [/api], methods: [DELETE]}
  - {name: canary, service: sc, paths: [/api], headers: {x-version: [v2]}}
`, a.Addr, b.Addr, c.Addr, host.Addr))
	cl := newClient()
	for _, tc := range []struct {
		desc, method, path string
		hdr                []string
		wantStatus         int
		wantBody           string
	}{
		{desc: "prefix with strip and service path", path: "/api/x?q=1", wantStatus: 200, wantBody: "a GET /base/x?q=1"},
		{desc: "bare prefix strips to service path", path: "/api", wantStatus: 200, wantBody: "a GET /base"},
		{desc: "longest prefix wins, no strip", path: "/api/v2/y", wantStatus: 200, wantBody: "a GET /base/api/v2/y"},
		{desc: "regex path", path: "/users/42", wantStatus: 200, wantBody: "b GET /users/42"},
		{desc: "regex anchored at end", path: "/users/42/x", wantStatus: 404},
		{desc: "wildcard host beats no host", path: "/api/z", hdr: []string{"Host", "shop.example.com"}, wantStatus: 200, wantBody: "b GET /z"},
		{desc: "method constraint", method: "DELETE", path: "/api/z", wantStatus: 200, wantBody: "c DELETE /z"},
		{desc: "header constraint", path: "/api/z", hdr: []string{"X-Version", "V2"}, wantStatus: 200, wantBody: "c GET /z"},
		{desc: "no route", path: "/nothing", wantStatus: 404, wantBody: `{"message":"no Route matched with those values"}`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			req, _ := http.NewRequest(m, g.url(tc.path), nil)
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				if tc.hdr[i] == "Host" {
					req.Host = tc.hdr[i+1]
				} else {
					req.Header.Set(tc.hdr[i], tc.hdr[i+1])
				}
			}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && strings.TrimSpace(string(body)) != tc.wantBody {
				t.Fatalf("body %q, want %q", body, tc.wantBody)
			}
			if resp.StatusCode == 404 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("404 content type %q, want JSON", resp.Header.Get("Content-Type"))
			}
		})
	}

	t.Run("preserve_host and forwarded headers", func(t *testing.T) {
		_, _, body := get(t, cl, g.url("/echo/x"), "Host", "app.test", "X-Forwarded-For", "10.1.2.3")
		want := "host=app.test xff=10.1.2.3, 127.0.0.1 proto=http fwdhost=app.test prefix=/echo"
		if body != want {
			t.Fatalf("got %q\nwant %q", body, want)
		}
		_, _, body = get(t, cl, g.url("/nohost"), "Host", "app.test")
		if !strings.HasPrefix(body, "host="+host.Addr+" ") {
			t.Fatalf("without preserve_host the upstream should see its own host: %q", body)
		}
	})
}

// TestRetriesKillBackend kills one of two backends while a bounded load
// runs: no client GET may fail.
func TestRetriesKillBackend(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
services:
  - {name: s, host: u, retries: 3, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, a.Addr, b.Addr))
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	deadline := time.Now().Add(20 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh connection per request is not needed: the gateway's
			// client side stays up; only the backend dies.
			c := newClient()
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(g.url("/x"))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "traffic on both backends", func() bool { return a.Hits() > 50 && b.Hits() > 50 })
	b.Close() // mid-run: its pooled connections die and its port refuses
	hitsAfterKill := ok.Load()
	waitFor(t, 10*time.Second, "more traffic after the kill", func() bool { return ok.Load() > hitsAfterKill+1500 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d GETs failed after a backend was killed; want 0", failed.Load(), failed.Load()+ok.Load())
	}
	t.Logf("%d GETs, 0 failed", ok.Load())
}

// TestNonIdempotentNotResent: a POST whose connection was established and
// then broke must not be sent again; a GET is retried.
func TestNonIdempotentNotResent(t *testing.T) {
	var posts, gets atomic.Int64
	breaker := startBackend(t, "breaker", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			io.Copy(io.Discard, r.Body)
		} else {
			gets.Add(1)
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no response at all
		}
	}))
	good := startBackend(t, "good", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
services:
  - {name: s, host: u, retries: 5, routes: [{name: r, paths: [/]}]}
`, breaker.Addr, good.Addr))
	c := newClient()
	var postFails int
	for i := 0; i < 10; i++ {
		resp, err := c.Post(g.url("/p"), "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadGateway {
			postFails++
		} else if resp.StatusCode != 200 {
			t.Fatalf("POST status %d", resp.StatusCode)
		}
	}
	if posts.Load() != int64(postFails) || postFails == 0 {
		t.Fatalf("breaker saw %d POSTs and %d POSTs failed: each failed POST must reach a backend exactly once", posts.Load(), postFails)
	}
	for i := 0; i < 10; i++ {
		if status, _, _ := get(t, c, g.url("/g")); status != 200 {
			t.Fatalf("GET must be retried on the other target, got %d", status)
		}
	}
	if gets.Load() == 0 {
		t.Fatal("the breaker never saw a GET; the test did not exercise a retry")
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	closed := freeAddr(t) // nothing listens here
	g := startGateway(t, fmt.Sprintf(`
services:
  - {name: slow, url: "http://%s", retries: 0, read_timeout: 300, routes: [{name: slow, paths: [/slow]}]}
  - {name: refused, url: "http://%s", retries: 2, routes: [{name: refused, paths: [/refused]}]}
`, slow.Addr, closed))
	c := newClient()
	status, _, body := get(t, c, g.url("/slow"))
	if status != http.StatusGatewayTimeout || !strings.Contains(body, `"message"`) {
		t.Fatalf("slow upstream: %d %q, want 504 with a JSON message", status, body)
	}
	status, _, body = get(t, c, g.url("/refused"))
	if status != http.StatusBadGateway || !strings.Contains(body, `"message"`) {
		t.Fatalf("refused upstream: %d %q, want 502 with a JSON message", status, body)
	}
	waitFor(t, 5*time.Second, "access log with attempts", func() bool {
		for _, l := range g.logsWhere("access") {
			if l["route"] == "refused" && l["attempts"] == float64(3) && l["status"] == float64(502) {
				return true
			}
		}
		return false
	})
}

func TestBodyLimit(t *testing.T) {
	a := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	}))
	// max_body_size is a proxy-level setting: the config carries its own listeners.
	g2 := startGatewayRaw(t, fmt.Sprintf(`proxy:
  listen: %%s
  max_body_size: 1KB
admin:
  listen: %%s
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/]}]}
`, a.Addr))
	c := newClient()
	resp, err := c.Post(g2.url("/"), "text/plain", strings.NewReader(strings.Repeat("x", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "1000" {
		t.Fatalf("small body: %d %q", resp.StatusCode, body)
	}
	resp, err = c.Post(g2.url("/"), "text/plain", strings.NewReader(strings.Repeat("x", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d %q, want 413", resp.StatusCode, body)
	}
}

// startGatewayRaw runs the binary on a full config whose two %s are the
// proxy and admin addresses.
func startGatewayRaw(t *testing.T, tmpl string) *gateway {
	t.Helper()
	addrs := freeAddrs(t, 2)
	g := &gateway{t: t, ProxyAddr: addrs[0], AdminAddr: addrs[1], exited: make(chan struct{})}
	g.cfgPath = filepath.Join(t.TempDir(), "outrigger.yaml")
	if err := os.WriteFile(g.cfgPath, []byte(fmt.Sprintf(tmpl, g.ProxyAddr, g.AdminAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(binary, "run", "--config", g.cfgPath)
	g.startLogged()
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.exited })
	waitFor(t, 10*time.Second, "admin listener", func() bool {
		resp, err := http.Get("http://" + g.AdminAddr + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return g
}

func TestWebSocketEcho(t *testing.T) {
	ws := startBackend(t, "ws", websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(c, &msg) != nil || websocket.Message.Send(c, msg) != nil {
				return
			}
		}
	}))
	g := startGateway(t, fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/ws]}]}
`, ws.Addr))
	conn, err := websocket.Dial("ws://"+g.ProxyAddr+"/ws", "", "http://"+g.ProxyAddr)
	if err != nil {
		t.Fatalf("websocket through the proxy: %v", err)
	}
	defer conn.Close()
	for _, msg := range []string{"hello", "outrigger", strings.Repeat("z", 10000)} {
		if err := websocket.Message.Send(conn, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(conn, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %q, want %q", got[:min(len(got), 20)], msg[:min(len(msg), 20)])
		}
	}
}

// TestSSEStreaming: each event must reach the client before the backend
// sends the next one (no buffering in the proxy).
func TestSSEStreaming(t *testing.T) {
	next := make(chan struct{})
	sse := startBackend(t, "sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			rc.Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Second):
				return
			}
		}
	}))
	g := startGateway(t, fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/events]}]}
`, sse.Addr))
	resp, err := newClient().Get(g.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v (the proxy buffered the stream?)", i, err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		rd.ReadString('\n') // blank line
		if i < 2 {
			next <- struct{}{} // only now may the backend send the next event
		}
	}
}

func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	}))
	g := startGateway(t, fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/]}]}
`, slow.Addr))
	type res struct {
		status int
		body   string
		err    error
	}
	done := make(chan res, 1)
	go func() {
		resp, err := newClient().Get(g.url("/long"))
		if err != nil {
			done <- res{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- res{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	g.signal(syscall.SIGTERM)
	waitFor(t, 5*time.Second, "the proxy to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", g.ProxyAddr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(release)
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request during drain: %+v, want 200 finished", r)
	}
	if code := g.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestReload(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	cfg := func(path string) string {
		return fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}]
services:
  - {name: s, host: u, routes: [{name: r, paths: [%s]}]}
  - {name: sb, url: "http://%s", routes: [{name: rb, paths: [/b]}]}
`, a.Addr, path, b.Addr)
	}
	g := startGateway(t, cfg("/one"))
	c := newClient()
	if s, _, _ := get(t, c, g.url("/one")); s != 200 {
		t.Fatalf("/one: %d", s)
	}
	gen := g.generation()
	g.writeConfig(cfg("/two"))
	g.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "reload", func() bool { return g.generation() > gen })
	if s, _, _ := get(t, c, g.url("/two")); s != 200 {
		t.Fatalf("/two after reload: %d", s)
	}
	if s, _, _ := get(t, c, g.url("/one")); s != 404 {
		t.Fatalf("/one after reload: %d, want 404", s)
	}
	// A broken file keeps the running configuration.
	gen = g.generation()
	g.writeConfig(cfg("/three") + "bogus_key: 1\n")
	g.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "reload failure log", func() bool { return len(g.logsWhere("reload failed; keeping the running configuration")) > 0 })
	if g.generation() != gen {
		t.Fatal("a bad file changed the generation")
	}
	if s, _, _ := get(t, c, g.url("/two")); s != 200 {
		t.Fatalf("/two after a failed reload: %d", s)
	}
	l := g.logsWhere("reload failed; keeping the running configuration")[0]
	if e, _ := l["error"].(string); !strings.Contains(e, ":") || !strings.Contains(e, "bogus_key") {
		t.Fatalf("reload error should name file:line and the key: %v", l["error"])
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		desc, body, want string
	}{
		{desc: "unknown key", body: "upstreams:\n  - name: u\n    colour: red\n", want: ":3:5:"},
		{desc: "weight out of range", body: "upstreams:\n  - name: u\n    targets:\n      - target: 127.0.0.1:1\n        weight: 70000\n", want: ":5:17:"},
		{desc: "route to a missing service", body: "routes:\n  - name: r\n    service: nope\n    paths: [/]\n", want: ":3:"},
		{desc: "bad target", body: "upstreams:\n  - name: u\n    targets: [{target: nope}]\n", want: ":3:"},
		{desc: "bad timeout", body: "services:\n  - name: s\n    url: http://127.0.0.1:1\n    read_timeout: -5\n", want: ":4:"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.desc, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"validate", "run"} {
				out, err := exec.Command(binary, cmd, "--config", path).CombinedOutput()
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 2 {
					t.Fatalf("%s: err %v, want exit 2\n%s", cmd, err, out)
				}
				if !strings.Contains(string(out), path+tc.want) {
					t.Fatalf("%s: output %q does not contain %q", cmd, out, path+tc.want)
				}
			}
		})
	}
	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte(fmt.Sprintf(exampleConfig, "127.0.0.1:19001", "127.0.0.1:19002")), 0o600)
	if out, err := exec.Command(binary, "validate", "--config", ok).CombinedOutput(); err != nil {
		t.Fatalf("the example config must validate: %v\n%s", err, out)
	}
}
