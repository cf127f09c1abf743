package main

// The HTTP/2 section: h2load (prior knowledge over plaintext) against
// Outrigger with h2c on, nginx ("listen ... http2") and HAProxy ("bind ...
// proto h2"), each proxying to the same two origins over HTTP/1.1.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// h2Shape is one HTTP/2 load: conns connections with streams concurrent
// streams each.
type h2Shape struct{ conns, streams int }

func (s h2Shape) String() string { return fmt.Sprintf("%dx%d", s.conns, s.streams) }

// parseShapes parses "8x1,8x16".
func parseShapes(v string) ([]h2Shape, error) {
	var out []h2Shape
	for _, f := range strings.Split(v, ",") {
		c, m, ok := strings.Cut(strings.TrimSpace(f), "x")
		conns, err1 := strconv.Atoi(c)
		streams, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || conns < 1 || streams < 1 {
			return nil, fmt.Errorf("%q: want CONNECTIONSxSTREAMS, both positive", f)
		}
		out = append(out, h2Shape{conns, streams})
	}
	return out, nil
}

// benchH2 runs the HTTP/2 section: its own proxy processes, stopped at
// its end.
func benchH2(o benchOpts, tmp string, origins []string) error {
	if len(o.h2) == 0 {
		return nil
	}
	if o.h2load == "" {
		fmt.Println("\nh2load: not installed (apt-get install nghttp2-client to measure HTTP/2)")
		return nil
	}
	var targets []*target
	for i, bin := range strings.Split(o.outrigger, ",") {
		name := "outrigger"
		if i > 0 {
			name += ":" + filepath.Base(bin)
		}
		og, err := startOutrigger(name, bin, filepath.Join(tmp, "h2-"+strconv.Itoa(i)), origins, true)
		if err != nil {
			return err
		}
		defer og.stop()
		targets = append(targets, og.t)
	}
	for _, pr := range startPeers([]peer{
		{"nginx", "nginx-light", func(path string) (*proc, error) {
			return startNginxOn(path, filepath.Join(tmp, "nginx-h2"), origins, true)
		}},
		{"haproxy", "haproxy", func(path string) (*proc, error) {
			return startHAProxyOn(path, filepath.Join(tmp, "haproxy-h2.cfg"), origins, true)
		}},
	}, "HTTP/2") {
		defer pr.stop()
		targets = append(targets, pr.t)
	}
	fmt.Printf("\nHTTP/2 clients (h2load -t1, prior knowledge), HTTP/1.1 to the same origins, %s per run, %d rounds (medians)\n",
		o.d, o.rounds)
	logs := filepath.Join(tmp, "h2load.log")
	for _, t := range targets {
		if _, err := measureWith(t, func() (run, error) { return loadH2(o.h2load, t.url, h2Shape{8, 1}, o.d/5, logs) }); err != nil {
			return fmt.Errorf("%s (HTTP/2 warm-up): %w", t.name, err)
		}
		t.rssIdle, t.anonIdle = treeRSS(t.pid), treeMem(t.pid, "RssAnon:")
	}
	for _, sh := range o.h2 {
		// Round by round across the targets, as the HTTP/1.1 section.
		rs := map[string][]run{}
		for range o.rounds {
			for _, t := range targets {
				r, err := measureWith(t, func() (run, error) { return loadH2(o.h2load, t.url, sh, o.d, logs) })
				if err != nil {
					return fmt.Errorf("%s (HTTP/2 %s): %w", t.name, sh, err)
				}
				rs[t.name] = append(rs[t.name], r)
			}
		}
		med := map[string]run{}
		for name, r := range rs {
			med[name] = median(r)
		}
		report(fmt.Sprintf("HTTP/2: %d connections x %d streams", sh.conns, sh.streams), targets, med)
	}
	return nil
}

var (
	h2loadFinished = regexp.MustCompile(`finished in ([0-9.]+)(us|ms|s|m),`)
	h2loadRequests = regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatus   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// h2loadTimeout is how long h2load may overrun its duration before it is
// killed.
const h2loadTimeout = 15 * time.Second

// loadH2 runs h2load with one thread for d and parses its summary; the
// latencies come from its per-request log (written to logPath).
func loadH2(h2load, url string, sh h2Shape, d time.Duration, logPath string) (run, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+h2loadTimeout)
	defer cancel()
	_ = os.Remove(logPath)
	out, err := exec.CommandContext(ctx, h2load, "-t1", "-c", strconv.Itoa(sh.conns), "-m", strconv.Itoa(sh.streams),
		"-D", strconv.Itoa(secs), "--log-file", logPath, url).CombinedOutput()
	if err != nil {
		return run{}, fmt.Errorf("h2load: %v: %s", err, out)
	}
	s := string(out)
	fin, req := h2loadFinished.FindStringSubmatch(s), h2loadRequests.FindStringSubmatch(s)
	if fin == nil || req == nil {
		return run{}, fmt.Errorf("h2load: no summary in %q", s)
	}
	var r run
	r.elapsed = wrkDur(fin[1], fin[2])
	for i, v := range req[1:] {
		n, _ := strconv.Atoi(v)
		if i == 0 {
			r.reqs = n
		} else {
			r.errs += n
		}
	}
	if st := h2loadStatus.FindStringSubmatch(s); st != nil {
		for _, v := range st[2:] {
			n, _ := strconv.Atoi(v)
			r.errs += n
			r.reqs -= n
		}
	}
	lat, err := h2loadLatencies(logPath)
	if err != nil {
		return run{}, err
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99 = lat[(len(lat)-1)/2], lat[int(float64(len(lat)-1)*.99)]
	}
	return r, nil
}

// h2loadLatencies reads the durations of h2load's log: one line a
// request, "start (µs since the epoch) TAB status TAB duration (µs)".
func h2loadLatencies(path string) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("h2load log: %w", err)
	}
	defer f.Close()
	var lat []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 3 {
			continue
		}
		us, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			continue
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	return lat, sc.Err()
}

// waitH2 waits until url answers 200 over HTTP/2 with prior knowledge.
func waitH2(url string, deadline time.Duration) error {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Second}
	end := time.Now().Add(deadline)
	var last error = errors.New("no attempt")
	for time.Now().Before(end) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 over HTTP/2 within %s: %v", url, deadline, last)
}

func startAndWaitH2(name string, cmd *exec.Cmd, url string) (*proc, error) {
	return startAndWaitFor(name, cmd, url, waitH2)
}
