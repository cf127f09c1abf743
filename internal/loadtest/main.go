// Command loadtest is `make bench`'s loopback load test. It starts a small
// backend in a child process, then drives the same bounded closed-loop load
// (fixed workers, fixed duration and request cap) at it directly, through
// Outrigger, and through nginx and HAProxy when they are installed, and
// prints requests/s and latency percentiles with ratios against the direct
// baseline measured in the same run. It asserts nothing: timings on shared
// machines are noisy, so only the side-by-side ratios mean something.
package main

import (
	"bufio"
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
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	var (
		outrigger = flag.String("outrigger", "bin/outrigger", "outrigger binary")
		workers   = flag.Int("c", 32, "concurrent connections")
		duration  = flag.Duration("d", 5*time.Second, "duration of each run")
		maxReq    = flag.Int("n", 2_000_000, "cap on requests per run")
		backend   = flag.String("serve-backend", "", "internal: serve the test backend on this address")
		size      = flag.Int("size", 128, "response body size in bytes")
	)
	flag.Parse()
	if *backend != "" {
		serveBackend(*backend, *size)
		return
	}
	if err := bench(*outrigger, *workers, *duration, *maxReq, *size); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
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

type result struct {
	name          string
	reqs, errs    int
	elapsed       time.Duration
	p50, p99, max time.Duration
}

func (r result) rps() float64 { return float64(r.reqs) / r.elapsed.Seconds() }

// load runs a closed loop: each worker sends its next request when the last
// one finished, until the duration or the request cap is reached.
func load(name, url string, workers int, d time.Duration, maxReq int) result {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
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
	r := result{name: name, reqs: len(lat), errs: errs, elapsed: el, p50: pct(.50), p99: pct(.99)}
	if len(lat) > 0 {
		r.max = lat[len(lat)-1]
	}
	return r
}

func bench(outrigger string, workers int, d time.Duration, maxReq, size int) error {
	tmp, err := os.MkdirTemp("", "outrigger-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	backendAddr, err := freeAddr()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	be := exec.Command(self, "-serve-backend", backendAddr, "-size", fmt.Sprint(size))
	if err := be.Start(); err != nil {
		return err
	}
	defer func() { _ = be.Process.Kill(); _ = be.Wait() }()
	if err := waitHTTP("http://"+backendAddr+"/", 10*time.Second); err != nil {
		return err
	}

	type target struct{ name, url string }
	targets := []target{{name: "direct", url: "http://" + backendAddr + "/bench"}}

	proxyAddr, _ := freeAddr()
	adminAddr, _ := freeAddr()
	cfg := filepath.Join(tmp, "outrigger.yaml")
	err = os.WriteFile(cfg, fmt.Appendf(nil, `proxy: {listen: %q}
admin: {listen: %q}
log: {level: warn, access_log: false}
upstreams:
  - name: bench
    targets: [{target: %q}]
services:
  - name: bench
    host: bench
    routes: [{name: bench, paths: [/], strip_path: false}]
`, proxyAddr, adminAddr, backendAddr), 0o600)
	if err != nil {
		return err
	}
	og := exec.Command(outrigger, "run", "--config", cfg)
	og.Stderr = os.Stderr
	if err := og.Start(); err != nil {
		return fmt.Errorf("start outrigger: %w", err)
	}
	defer func() { _ = og.Process.Kill(); _ = og.Wait() }()
	if err := waitHTTP("http://"+proxyAddr+"/bench", 10*time.Second); err != nil {
		return err
	}
	targets = append(targets, target{name: "outrigger", url: "http://" + proxyAddr + "/bench"})

	if path, err := exec.LookPath("nginx"); err == nil {
		if t, stop, err := startNginx(path, tmp, backendAddr); err == nil {
			defer stop()
			targets = append(targets, target{name: "nginx", url: t})
		} else {
			fmt.Fprintln(os.Stderr, "nginx found but did not start:", err)
		}
	} else {
		fmt.Println("nginx: not installed (apt-get install nginx-light to compare)")
	}
	if path, err := exec.LookPath("haproxy"); err == nil {
		if t, stop, err := startHAProxy(path, tmp, backendAddr); err == nil {
			defer stop()
			targets = append(targets, target{name: "haproxy", url: t})
		} else {
			fmt.Fprintln(os.Stderr, "haproxy found but did not start:", err)
		}
	} else {
		fmt.Println("haproxy: not installed (apt-get install haproxy to compare)")
	}

	fmt.Printf("\nloopback load test: %d connections, %s per run (cap %d requests), %d-byte responses\n", workers, d, maxReq, size)
	var results []result
	for _, t := range targets {
		_ = load(t.name, t.url, workers, d/5, maxReq/5) // warm-up
		results = append(results, load(t.name, t.url, workers, d, maxReq))
	}
	base := results[0]
	fmt.Printf("%-10s %10s %8s %10s %10s %10s %12s %10s\n", "target", "req/s", "errors", "p50", "p99", "max", "rps/direct", "p99/direct")
	for _, r := range results {
		fmt.Printf("%-10s %10.0f %8d %10s %10s %10s %12.2f %10.2f\n", r.name, r.rps(), r.errs,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond),
			r.rps()/base.rps(), float64(r.p99)/float64(base.p99))
	}
	for _, r := range results[1:] {
		if r.name != "outrigger" {
			o := results[1]
			fmt.Printf("outrigger/%s: %.2f× the requests/s, %.2f× the p99\n", r.name, o.rps()/r.rps(), float64(o.p99)/float64(r.p99))
		}
	}
	return nil
}

func startNginx(path, tmp, backend string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(tmp, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  upstream backend { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, dir, backend, addr)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "-p", dir, "-c", cf)
	return startAndWait(cmd, "http://"+addr+"/bench")
}

func startHAProxy(path, tmp, backend string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
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
  bind %s
  default_backend be
backend be
  http-reuse always
  server s1 %s
`, addr, backend)
	cf := filepath.Join(tmp, "haproxy.cfg")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "-f", cf, "-db")
	return startAndWait(cmd, "http://"+addr+"/bench")
}

func startAndWait(cmd *exec.Cmd, url string) (string, func(), error) {
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
		}
	}()
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := waitHTTP(url, 10*time.Second); err != nil {
		stop()
		return "", nil, err
	}
	return url, stop, nil
}
