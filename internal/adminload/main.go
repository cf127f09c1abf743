// Command adminload measures admin write latency against the real binary:
// it starts an outrigger build on a small configuration on loopback (one
// upstream u1 with two static targets, a route to it, the admin layer in a
// file store), sends -n sequential PATCHes of a target's weight to the admin
// API and prints their p50 and p99. Several builds can be compared in one
// run (-outrigger old,new): rounds alternate the order of the builds so that
// drift on a shared machine falls on both, and the summary gives each
// build's medians (the upper one of an even count), their ranges, and the
// per-round ratios against the first build.
//
// With -gets it first sends that many GETs of /upstreams/u1/targets, and
// with -covdir it runs the build with GOCOVERDIR set: an instrumented build
// (go build -cover -covermode=count) run once with -n 0 and once with -n N,
// the same -gets, gives the blocks an admin target change runs.
//
// Every run is bounded: the binary must answer /health within -ready, each
// request within -timeout, and it gets SIGTERM (then SIGKILL after -ready)
// at the end. It asserts nothing about the timings.
package main

import (
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
	"syscall"
	"time"
)

func main() {
	var (
		bins    = flag.String("outrigger", "bin/outrigger", "outrigger binary; a comma-separated list compares builds, rounds alternating their order")
		n       = flag.Int("n", 1000, "sequential PATCHes per run")
		rounds  = flag.Int("rounds", 4, "runs per build")
		gets    = flag.Int("gets", 0, "GETs of the upstream's targets before the PATCHes")
		covdir  = flag.String("covdir", "", "GOCOVERDIR for the binary (an instrumented build)")
		ready   = flag.Duration("ready", 30*time.Second, "how long the binary may take to answer /health, and to exit")
		timeout = flag.Duration("timeout", 10*time.Second, "limit on each request")
	)
	flag.Parse()
	list := strings.Split(*bins, ",")
	if *n < 0 || *gets < 0 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "adminload: -n and -gets must be >= 0, -rounds >= 1")
		os.Exit(2)
	}
	res := make(map[string][]result, len(list))
	for r := range *rounds {
		order := slices.Clone(list)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, bin := range order {
			got, err := runOnce(bin, *n, *gets, *covdir, *ready, *timeout)
			if err != nil {
				fmt.Fprintf(os.Stderr, "adminload: %s: %v\n", bin, err)
				os.Exit(1)
			}
			res[bin] = append(res[bin], got)
			if *n > 0 {
				fmt.Printf("round %d  %-40s p50 %8s  p99 %8s\n", r+1, bin, got.p50, got.p99)
			}
		}
	}
	if *n == 0 {
		return
	}
	fmt.Println()
	for _, bin := range list {
		p50, p99 := split(res[bin])
		fmt.Printf("%-40s p50 median %8s [%s..%s]  p99 median %8s [%s..%s]\n", bin,
			median(p50), slices.Min(p50), slices.Max(p50), median(p99), slices.Min(p99), slices.Max(p99))
	}
	base := res[list[0]]
	for _, bin := range list[1:] {
		var r50, r99 []float64
		for i, got := range res[bin] {
			r50 = append(r50, float64(got.p50)/float64(base[i].p50))
			r99 = append(r99, float64(got.p99)/float64(base[i].p99))
		}
		fmt.Printf("%s / %s per round: p50 median %.2f [%.2f..%.2f]  p99 median %.2f [%.2f..%.2f]\n", bin, list[0],
			median(r50), slices.Min(r50), slices.Max(r50), median(r99), slices.Min(r99), slices.Max(r99))
	}
}

// result is one run's latency percentiles.
type result struct{ p50, p99 time.Duration }

func split(rs []result) (p50, p99 []time.Duration) {
	for _, r := range rs {
		p50, p99 = append(p50, r.p50), append(p99, r.p99)
	}
	return p50, p99
}

func median[T time.Duration | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

const configTemplate = `proxy:
  listen: %s
admin:
  listen: %s
  state_file: %s
log:
  level: warn
upstreams:
  - name: u1
    targets: [{target: "127.0.0.1:7001"}, {target: "127.0.0.1:7002"}]
services:
  - {name: s1, host: u1}
routes:
  - {name: r1, paths: [/a], service: s1}
`

// runOnce starts bin on a fresh configuration and file store, sends the
// GETs and PATCHes, and stops it.
func runOnce(bin string, n, gets int, covdir string, ready, timeout time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "adminload")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	proxyAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cfg := filepath.Join(dir, "outrigger.yaml")
	body := fmt.Sprintf(configTemplate, proxyAddr, adminAddr, filepath.Join(dir, "state.json"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.Env = os.Environ()
	if covdir != "" {
		cmd.Env = append(cmd.Env, "GOCOVERDIR="+covdir)
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan struct{}) // closed once the process has exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(ready):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("did not exit after SIGTERM")
		}
	}
	c := &http.Client{Timeout: timeout}
	base := "http://" + adminAddr
	if err := waitHealthy(c, base, ready, exited); err != nil {
		_ = stop()
		return result{}, err
	}
	for range gets {
		if err := send(c, http.MethodGet, base+"/upstreams/u1/targets", ""); err != nil {
			_ = stop()
			return result{}, err
		}
	}
	lat := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := send(c, http.MethodPatch, base+"/upstreams/u1/targets/127.0.0.1:7001", fmt.Sprintf(`{"weight": %d}`, 1+i%100)); err != nil {
			_ = stop()
			return result{}, err
		}
		lat = append(lat, time.Since(start))
	}
	if err := stop(); err != nil {
		return result{}, err
	}
	if n == 0 {
		return result{}, nil
	}
	slices.Sort(lat)
	return result{p50: lat[len(lat)/2].Round(time.Microsecond), p99: lat[len(lat)*99/100].Round(time.Microsecond)}, nil
}

// waitHealthy polls GET /health until it answers 200, the process exits
// or the deadline passes.
func waitHealthy(c *http.Client, base string, limit time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := send(c, http.MethodGet, base+"/health", ""); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admin API not healthy within %s", limit)
		}
		select {
		case <-exited:
			return errors.New("exited before it was healthy")
		case <-tick.C:
		}
	}
}

// send makes one request and requires a 200.
func send(c *http.Client, method, url, body string) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return nil
}

// freeAddr returns a loopback address the kernel just chose.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
