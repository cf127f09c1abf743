// Command loadtest is `make bench`'s loopback load test. It starts two small
// Go origins in child processes, then drives the same bounded load at them
// directly, through Outrigger, and through nginx and HAProxy (when they are
// installed), at each requested concurrency, for a few rounds, and prints
// the medians: requests/s, p50/p99 latency, the proxy's CPU time per request
// (read from /proc, summed over its process tree) and its resident memory
// idle and under load, with ratios against nginx measured in the same run.
// Rounds alternate between the targets. Several Outrigger builds can be
// compared in one run (-outrigger old,new). HTTP/2 (h2load, h2.go) and
// gRPC (a bounded grpc-go client, grpc.go) have tables of their own.
//
// The load generator is wrk (one thread) when it is installed, else a
// closed loop in this process. Either way every run is bounded in time and
// the built-in loop also in requests. It asserts nothing: timings on shared
// machines are noisy, so only the side-by-side ratios mean something.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	var (
		outrigger = flag.String("outrigger", "bin/outrigger", "outrigger binary; a comma-separated list compares builds in one run (the second and later are named outrigger:FILE)")
		conns     = flag.String("c", "8,64", "comma-separated concurrent connection counts (HTTP/1.1); \"\" skips them")
		duration  = flag.Duration("d", 5*time.Second, "duration of each run")
		rounds    = flag.Int("rounds", 3, "rounds per target and concurrency (medians are reported)")
		maxReq    = flag.Int("n", 2_000_000, "cap on requests per run (built-in generator)")
		backend   = flag.String("serve-backend", "", "internal: serve the test backend on this address")
		size      = flag.Int("size", 64, "response body size in bytes")
		gen       = flag.String("gen", "auto", "load generator: auto (wrk when installed), wrk, builtin")
		h2shapes  = flag.String("h2", "8x1,8x16", "HTTP/2 runs (h2load): comma-separated CONNECTIONSxSTREAMS; \"\" skips them")
		grpcShape = flag.String("grpc", "1x16,4x16", "gRPC runs (unary calls): comma-separated CONNECTIONSxCALLS in flight per connection; \"\" skips them")
		grpcServe = flag.String("serve-grpc", "", "internal: serve the gRPC test origin on this address")
	)
	flag.Parse()
	if *backend != "" {
		serveBackend(*backend, *size)
		return
	}
	if *grpcServe != "" {
		serveGRPC(*grpcServe, *size)
		return
	}
	var cs []int
	for _, f := range strings.Split(*conns, ",") {
		if *conns == "" {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "loadtest: -c %q: want positive integers\n", *conns)
			os.Exit(2)
		}
		cs = append(cs, n)
	}
	o := benchOpts{outrigger: *outrigger, conns: cs, d: *duration, rounds: max(*rounds, 1), maxReq: *maxReq, size: *size}
	var err error
	if *h2shapes != "" {
		if o.h2, err = parseShapes(*h2shapes); err != nil {
			fmt.Fprintf(os.Stderr, "loadtest: -h2 %q: %v\n", *h2shapes, err)
			os.Exit(2)
		}
	}
	if *grpcShape != "" {
		if o.grpc, err = parseShapes(*grpcShape); err != nil {
			fmt.Fprintf(os.Stderr, "loadtest: -grpc %q: %v\n", *grpcShape, err)
			os.Exit(2)
		}
	}
	o.h2load, _ = exec.LookPath("h2load")
	switch *gen {
	case "auto":
		o.wrk, _ = exec.LookPath("wrk")
	case "wrk":
		p, err := exec.LookPath("wrk")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: -gen wrk: wrk is not installed (apt-get install wrk)")
			os.Exit(2)
		}
		o.wrk = p
	case "builtin":
	default:
		fmt.Fprintf(os.Stderr, "loadtest: -gen %q: want auto, wrk or builtin\n", *gen)
		os.Exit(2)
	}
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type benchOpts struct {
	outrigger string
	conns     []int
	d         time.Duration
	rounds    int
	maxReq    int
	size      int
	wrk       string // path of wrk, "" for the built-in generator
	h2        []h2Shape
	h2load    string // path of h2load, "" when not installed
	grpc      []h2Shape
}

func serveBackend(addr string, size int) {
	body := []byte(strings.Repeat("x", size))
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}
	_ = srv.ListenAndServe()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHTTP(url string, deadline time.Duration) error {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, deadline)
}

// run is one measured run of one target at one concurrency.
type run struct {
	reqs, errs int
	elapsed    time.Duration
	p50, p99   time.Duration
	cpuPerReq  time.Duration // the proxy's CPU per request; 0 for direct
	rssLoad    int64         // the proxy's peak RSS during the run, bytes
}

func (r run) rps() float64 { return float64(r.reqs) / r.elapsed.Seconds() }

// loadBuiltin runs a closed loop: each worker sends its next request when
// the last one finished, until the duration or the request cap is reached.
func loadBuiltin(url string, workers int, d time.Duration, maxReq int) run {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		count int
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<14)
			localErr := 0
			for ctx.Err() == nil {
				mu.Lock()
				if count >= maxReq {
					mu.Unlock()
					break
				}
				count++
				mu.Unlock()
				t0 := time.Now()
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						localErr++
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += localErr
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*p)]
	}
	return run{reqs: len(lat), errs: errs, elapsed: el, p50: pct(.50), p99: pct(.99)}
}

var (
	wrkReqs   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkPct    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkErrs   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// wrkTimeout is how long wrk may overrun its duration before it is killed.
const wrkTimeout = 10 * time.Second

func wrkDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}

// loadWrk runs wrk with one thread (the proxies under test get the other
// core) and parses its summary.
func loadWrk(wrk, url string, workers int, d time.Duration) (run, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(context.Background(), d+wrkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, wrk, "-t1", "-c", strconv.Itoa(workers), "-d", strconv.Itoa(secs)+"s",
		"--latency", "--timeout", "5s", url).CombinedOutput()
	if err != nil {
		return run{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	s := string(out)
	m := wrkReqs.FindStringSubmatch(s)
	if m == nil {
		return run{}, fmt.Errorf("wrk: no summary in %q", s)
	}
	var r run
	r.reqs, _ = strconv.Atoi(m[1])
	r.elapsed = wrkDur(m[2], m[3])
	for _, p := range wrkPct.FindAllStringSubmatch(s, -1) {
		if p[1] == "50" {
			r.p50 = wrkDur(p[2], p[3])
		} else {
			r.p99 = wrkDur(p[2], p[3])
		}
	}
	if e := wrkErrs.FindStringSubmatch(s); e != nil {
		for _, v := range e[1:] {
			n, _ := strconv.Atoi(v)
			r.errs += n
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(s); e != nil {
		n, _ := strconv.Atoi(e[1])
		r.errs += n
	}
	return r, nil
}

// target is one thing under load: the origins themselves, or a proxy
// in front of them whose process tree is measured.
type target struct {
	name    string
	url     string
	pid     int   // root of the measured process tree; 0 for direct
	rssIdle int64 // after start-up and one warm-up, bytes
	// anonIdle is the anonymous part of rssIdle (heap, stacks: what the
	// process itself allocated); the rest is file pages (the binary and
	// libraries, shared with the page cache), whose residency the kernel
	// decides.
	anonIdle int64
}

func bench(o benchOpts) error {
	tmp, err := os.MkdirTemp("", "outrigger-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var origins []string
	for range 2 {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		be := exec.Command(self, "-serve-backend", addr, "-size", fmt.Sprint(o.size))
		if err := be.Start(); err != nil {
			return err
		}
		defer func() { _ = be.Process.Kill(); _ = be.Wait() }()
		if err := waitHTTP("http://"+addr+"/", 10*time.Second); err != nil {
			return err
		}
		origins = append(origins, addr)
	}

	if len(o.conns) > 0 {
		if err := benchH1(o, tmp, origins); err != nil {
			return err
		}
	}
	if err := benchH2(o, tmp, origins); err != nil {
		return err
	}
	return benchGRPC(o, tmp)
}

// benchH1 runs the HTTP/1.1 section: its own proxy processes, stopped at
// its end.
func benchH1(o benchOpts, tmp string, origins []string) error {
	targets := []*target{{name: "direct", url: "http://" + origins[0] + "/bench"}}
	for i, bin := range strings.Split(o.outrigger, ",") {
		name := "outrigger"
		if i > 0 {
			name += ":" + filepath.Base(bin)
		}
		og, err := startOutrigger(name, bin, filepath.Join(tmp, strconv.Itoa(i)), origins, false)
		if err != nil {
			return err
		}
		defer og.stop()
		targets = append(targets, og.t)
	}
	for _, pr := range startPeers([]peer{
		{"nginx", "nginx-light", func(path string) (*proc, error) { return startNginx(path, tmp, origins) }},
		{"haproxy", "haproxy", func(path string) (*proc, error) { return startHAProxy(path, tmp, origins) }},
	}, "") {
		defer pr.stop()
		targets = append(targets, pr.t)
	}

	genName := "built-in closed loop"
	if o.wrk != "" {
		genName = "wrk -t1"
	}
	fmt.Printf("\nloopback load test: %s, two Go origins, keep-alive, %d-byte responses, %s per run, %d rounds (medians)\n",
		genName, o.size, o.d, o.rounds)
	for _, t := range targets {
		if t.pid == 0 {
			continue
		}
		if _, err := measure(o, t, 8, o.d/5); err != nil { // warm-up
			return fmt.Errorf("%s: %w", t.name, err)
		}
		t.rssIdle, t.anonIdle = treeRSS(t.pid), treeMem(t.pid, "RssAnon:")
	}
	for _, c := range o.conns {
		// Round by round across the targets, so that what else the
		// machine does at some moment weighs on all of them alike.
		rs := map[string][]run{}
		for range o.rounds {
			for _, t := range targets {
				r, err := measure(o, t, c, o.d)
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				rs[t.name] = append(rs[t.name], r)
			}
		}
		med := map[string]run{}
		for name, r := range rs {
			med[name] = median(r)
		}
		report(fmt.Sprintf("%d connections", c), targets, med)
	}
	return nil
}

// measure runs one bounded load against t and reads the proxy's CPU time
// and peak RSS around it.
func measure(o benchOpts, t *target, conns int, d time.Duration) (run, error) {
	return measureWith(t, func() (run, error) {
		if o.wrk != "" {
			return loadWrk(o.wrk, t.url, conns, d)
		}
		return loadBuiltin(t.url, conns, d, o.maxReq), nil
	})
}

// measureWith runs load against t and reads the proxy's CPU time and peak
// RSS around it.
func measureWith(t *target, load func() (run, error)) (run, error) {
	cpu0 := treeCPU(t.pid)
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var p int64
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				peak <- max(p, treeRSS(t.pid))
				return
			case <-tk.C:
				p = max(p, treeRSS(t.pid))
			}
		}
	}()
	r, err := load()
	close(stop)
	r.rssLoad = <-peak
	if err != nil {
		return r, err
	}
	if t.pid != 0 && r.reqs > 0 {
		r.cpuPerReq = (treeCPU(t.pid) - cpu0) / time.Duration(r.reqs)
	}
	return r, nil
}

// median takes each figure's median across rounds independently.
func median(rs []run) run {
	pick := func(f func(run) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m := run{elapsed: time.Second}
	m.reqs = int(pick(func(r run) float64 { return r.rps() }))
	m.errs = int(pick(func(r run) float64 { return float64(r.errs) }))
	m.p50 = time.Duration(pick(func(r run) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(pick(func(r run) float64 { return float64(r.p99) }))
	m.cpuPerReq = time.Duration(pick(func(r run) float64 { return float64(r.cpuPerReq) }))
	m.rssLoad = int64(pick(func(r run) float64 { return float64(r.rssLoad) }))
	return m
}

func report(title string, targets []*target, med map[string]run) {
	const mib = 1 << 20
	fmt.Printf("\n%s\n", title)
	w := len("target")
	for _, t := range targets {
		w = max(w, len(t.name))
	}
	fmt.Printf("%-*s %10s %7s %9s %9s %10s %9s %9s %9s %9s %9s %9s\n", w, "target", "req/s", "errors", "p50", "p99",
		"cpu/req", "rss idle", "anon idle", "rss load", "rps×ngx", "cpu×ngx", "p99×ngx")
	ngx, haveNgx := med["nginx"]
	ratio := func(a, b float64) string {
		if !haveNgx || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, t := range targets {
		r := med[t.name]
		cpu, idle, anon, load, cpuRatio := "-", "-", "-", "-", "-"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.1fµs", float64(r.cpuPerReq)/float64(time.Microsecond))
			idle = fmt.Sprintf("%.1fMiB", float64(t.rssIdle)/mib)
			anon = fmt.Sprintf("%.1fMiB", float64(t.anonIdle)/mib)
			load = fmt.Sprintf("%.1fMiB", float64(r.rssLoad)/mib)
			cpuRatio = ratio(float64(r.cpuPerReq), float64(ngx.cpuPerReq))
		}
		fmt.Printf("%-*s %10.0f %7d %9s %9s %10s %9s %9s %9s %9s %9s %9s\n", w, t.name, r.rps(), r.errs,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), cpu, idle, anon, load,
			ratio(r.rps(), ngx.rps()), cpuRatio, ratio(float64(r.p99), float64(ngx.p99)))
	}
}

// proc is a started proxy.
type proc struct {
	t    *target
	stop func()
}

// startOutrigger starts Outrigger (bin, shown as name) in front of origins,
// serving HTTP/2 with prior knowledge beside HTTP/1.1 when h2c is set.
func startOutrigger(name, bin, tmp string, origins []string, h2c bool) (*proc, error) {
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	proxyAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(tmp, fmt.Sprintf("outrigger-h2c-%v.yaml", h2c))
	// As many idle upstream connections as nginx keeps (keepalive 128):
	// 8 HTTP/2 connections of 16 streams have 128 requests in flight.
	err = os.WriteFile(cfg, fmt.Appendf(nil, `proxy: {listen: %q, h2c: %v, max_idle_conns_per_host: 128}
admin: {listen: %q}
log: {level: warn, access_log: false}
upstreams:
  - name: bench
    targets: [{target: %q}, {target: %q}]
services:
  - name: bench
    host: bench
    routes: [{name: bench, paths: [/], strip_path: false}]
`, proxyAddr, h2c, adminAddr, origins[0], origins[1]), 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	if h2c {
		return startAndWaitH2(name, cmd, "http://"+proxyAddr+"/bench")
	}
	return startAndWait(name, cmd, "http://"+proxyAddr+"/bench")
}

func startNginx(path, tmp string, origins []string) (*proc, error) {
	return startNginxOn(path, filepath.Join(tmp, "nginx"), origins, false)
}

// startNginxOn starts nginx with its prefix in dir; with h2 its listener
// speaks HTTP/2 with prior knowledge only (nginx 1.22's "listen ... http2"
// without ssl), and a connection is never ended after 1000 requests
// (keepalive_requests: h2load does not reconnect after a GOAWAY).
func startNginxOn(path, dir string, origins []string, h2 bool) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cf, err := writeNginxConf(dir, fmt.Sprintf(`  upstream backend { server %[1]s; server %[2]s; keepalive 128; }
  server {
    listen %[3]s%[4]s;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
`, origins[0], origins[1], addr, map[bool]string{true: " http2; keepalive_requests 100000000"}[h2]))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "-p", dir, "-c", cf)
	if h2 {
		return startAndWaitH2("nginx", cmd, "http://"+addr+"/bench")
	}
	return startAndWait("nginx", cmd, "http://"+addr+"/bench")
}

// writeNginxConf writes dir/nginx.conf: nginx at its usual production
// shape (one worker per core, the machine's two; no access log; temp paths
// and logs in dir) with http's upstreams and servers given, and returns its
// path.
func writeNginxConf(dir, http string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
%[2]s}
`, dir, http)
	cf := filepath.Join(dir, "nginx.conf")
	return cf, os.WriteFile(cf, []byte(conf), 0o600)
}

// peer is a proxy compared with Outrigger: its binary, the Debian package
// that has it, and how it starts from the binary's path.
type peer struct {
	bin, pkg string
	start    func(path string) (*proc, error)
}

// startPeers starts each installed peer; one that is not installed or does
// not start is reported and left out. over names the protocol of the
// comparison ("" for HTTP/1.1). The caller stops what it returns.
func startPeers(peers []peer, over string) []*proc {
	compare, found := "to compare", "found"
	if over != "" {
		compare, found = "to compare over "+over, "("+over+") found"
	}
	var out []*proc
	for _, p := range peers {
		path, err := exec.LookPath(p.bin)
		if err != nil {
			fmt.Printf("%s: not installed (apt-get install %s %s)\n", p.bin, p.pkg, compare)
			continue
		}
		pr, err := p.start(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s %s but did not start: %v\n", p.bin, found, err)
			continue
		}
		out = append(out, pr)
	}
	return out
}

func startHAProxy(path, tmp string, origins []string) (*proc, error) {
	return startHAProxyOn(path, filepath.Join(tmp, "haproxy.cfg"), origins, false)
}

// startHAProxyOn starts HAProxy from the configuration file cf; with h2
// its listener speaks HTTP/2 with prior knowledge only ("proto h2").
func startHAProxyOn(path, cf string, origins []string, h2 bool) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind %s%s
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server s1 %s
  server s2 %s
`, addr, map[bool]string{true: " proto h2"}[h2], origins[0], origins[1])
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "-f", cf, "-db")
	if h2 {
		return startAndWaitH2("haproxy", cmd, "http://"+addr+"/bench")
	}
	return startAndWait("haproxy", cmd, "http://"+addr+"/bench")
}

func startAndWait(name string, cmd *exec.Cmd, url string) (*proc, error) {
	return startAndWaitFor(name, cmd, url, waitHTTP)
}

// startAndWaitFor starts cmd and waits until wait(url, 10s) succeeds.
func startAndWaitFor(name string, cmd *exec.Cmd, url string, wait func(string, time.Duration) error) (*proc, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { stopTree(cmd) }
	if err := wait(url, 10*time.Second); err != nil {
		stop()
		return nil, err
	}
	return &proc{t: &target{name: name, url: url, pid: cmd.Process.Pid}, stop: stop}, nil
}

// stopTree stops cmd and what it started: SIGTERM, which nginx's master
// passes on to its workers, then SIGKILL for whatever of the tree is left
// after 5 s (a SIGKILL to nginx's master alone left its workers running).
func stopTree(cmd *exec.Cmd) {
	pids := tree(cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	for _, p := range pids {
		if p != cmd.Process.Pid {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's CPU times; it is 100
// on every Linux architecture Go supports.
const clockTick = time.Second / 100

// tree returns pid and its descendants (nginx's workers, for one).
func tree(pid int) []int {
	if pid == 0 {
		return nil
	}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(p); len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields returns /proc/PID/stat's fields after the command name,
// starting with field 3 (state): f[1] is the parent, f[11] utime, f[12]
// stime.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// treeCPU is the user+system CPU time of pid's process tree.
func treeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		if f := statFields(p); len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * clockTick
}

// treeRSS is the resident set of pid's process tree, in bytes.
func treeRSS(pid int) int64 { return treeMem(pid, "VmRSS:") }

// treeMem sums one kB field of /proc/PID/status (field is its name with
// the colon) over pid's process tree, in bytes.
func treeMem(pid int, field string) int64 {
	var kb int64
	for _, p := range tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				kb += n
			}
		}
	}
	return kb * 1024
}
