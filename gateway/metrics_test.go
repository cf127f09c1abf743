package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
)

// testGateway runs a gateway on cfg (a YAML body without listeners) on
// kernel-chosen loopback ports and returns it with its proxy and admin base
// URLs; it stops at the end of the test.
func testGateway(t *testing.T, cfg string) (g *Gateway, proxyURL, adminURL string) {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err = New(f, Options{Log: zerolog.Nop(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, pl, al, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the gateway did not stop")
		}
	})
	return g, "http://" + pl.Addr().String(), "http://" + al.Addr().String()
}

// seriesCount gathers g's registry: the number of outrigger_* series, and
// those carrying target="addr" (name{labels} for the failure message).
func seriesCount(t *testing.T, g *Gateway, addr string) (n int, ofAddr []string) {
	t.Helper()
	mfs, err := g.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "outrigger_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			n++
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "target" && lp.GetValue() == addr {
					ofAddr = append(ofAddr, fmt.Sprintf("%s%v", mf.GetName(), m.GetLabel()))
				}
			}
		}
	}
	return n, ofAddr
}

// requestsSettled waits up to 5 s for requestsOf(addr) to reach want and
// returns its last value: a client has its answer before the proxy counts
// the request.
func requestsSettled(t *testing.T, g *Gateway, addr string, want float64) float64 {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		v := requestsOf(t, g, addr)
		if v >= want || time.Now().After(end) {
			return v
		}
		time.Sleep(time.Millisecond)
	}
}

// requestsOf returns outrigger_requests_total of target addr, summed over
// its series (-1 when it has none).
func requestsOf(t *testing.T, g *Gateway, addr string) float64 {
	t.Helper()
	mfs, err := g.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := -1.0
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "target" && lp.GetValue() == addr {
					v = max(v, 0) + m.GetCounter().GetValue()
				}
			}
		}
	}
	return v
}

func adminDo(t *testing.T, c *http.Client, method, u string, form url.Values, want int) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, u, resp.StatusCode, b, want)
	}
}

// hitUntil sends GETs until addr answered one (the backends answer their
// own address), at most n.
func hitUntil(t *testing.T, c *http.Client, u, addr string, n int) {
	t.Helper()
	for range n {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		if string(b) == addr {
			return
		}
	}
	t.Fatalf("%s did not answer in %d requests", addr, n)
}

// namingBackend answers its own address.
func namingBackend(t *testing.T) string {
	t.Helper()
	var addr string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, addr) }))
	t.Cleanup(srv.Close)
	addr = strings.TrimPrefix(srv.URL, "http://")
	return addr
}

// TestTargetSeriesChurn: targets added and removed through the admin API,
// each with traffic before it goes, leave no series behind: the number of
// series returns to its baseline, and no series names a departed target.
// A target removed while a request to it is in flight keeps its series
// until that request is counted, then they go; a target that comes back
// starts from fresh series.
func TestTargetSeriesChurn(t *testing.T) {
	const cycles = 40
	stay := namingBackend(t)
	g, pu, au := testGateway(t, fmt.Sprintf(`
upstreams:
  - {name: u, targets: [{target: %s}]}
services:
  - {name: s, host: u, routes: [{name: r, paths: [/]}]}
`, stay))
	c := &http.Client{Timeout: 10 * time.Second}
	hitUntil(t, c, pu+"/x", stay, 1)
	// The answer reaches the client before the request is counted: take
	// the baseline once it is.
	requestsSettled(t, g, stay, 1)
	base, _ := seriesCount(t, g, "")
	add := func(addr string) {
		adminDo(t, c, http.MethodPost, au+"/upstreams/u/targets", url.Values{"target": {addr}}, http.StatusCreated)
	}
	remove := func(addr string) {
		adminDo(t, c, http.MethodDelete, au+"/upstreams/u/targets/"+addr, nil, http.StatusNoContent)
	}

	peak := base
	for i := range cycles {
		addr := namingBackend(t)
		add(addr)
		hitUntil(t, c, pu+"/x", addr, 4)
		requestsSettled(t, g, addr, 1)
		if n, _ := seriesCount(t, g, ""); n > peak {
			peak = n
		}
		remove(addr)
		// The client has its answer before the proxy counts the request
		// (and lets go of the target): the series go once it has.
		var left []string
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, left = seriesCount(t, g, addr); len(left) == 0 || time.Now().After(end) {
				break
			}
		}
		if len(left) > 0 {
			t.Fatalf("cycle %d: series of the removed target %s remain: %v", i, addr, left)
		}
	}
	n, _ := seriesCount(t, g, "")
	t.Logf("series: baseline %d, %d while a churned target serves, %d after %d target add/remove cycles", base, peak, n, cycles)
	if n != base {
		t.Fatalf("%d series after %d target add/remove cycles, want the baseline %d", n, cycles, base)
	}

	t.Run("removed while a request is in flight", func(t *testing.T) {
		arrived, release := make(chan struct{}, 1), make(chan struct{})
		var addr string
		block := false
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				arrived <- struct{}{}
				<-release
			}
			io.WriteString(w, addr)
		}))
		defer srv.Close()
		defer func() {
			if !block {
				close(release)
			}
		}()
		addr = strings.TrimPrefix(srv.URL, "http://")
		add(addr)
		hitUntil(t, c, pu+"/x", addr, 4)
		// Round robin over two targets: the request after addr's goes to
		// stay, the one after that to addr.
		hitUntil(t, c, pu+"/x", stay, 1)
		answered := make(chan error, 1)
		go func() {
			resp, err := c.Get(pu + "/block")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			answered <- err
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the blocking request never reached its target")
		}
		remove(addr)
		if v := requestsSettled(t, g, addr, 1); v != 1 {
			t.Fatalf("while a request is in flight: requests_total of the removed target = %v, want its 1 finished request", v)
		}
		block = true
		close(release)
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
		// The request is counted after its answer is written: poll.
		end := time.Now().Add(5 * time.Second)
		for {
			_, left := seriesCount(t, g, addr)
			if len(left) == 0 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("after the in-flight request finished, series remain: %v", left)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n, _ := seriesCount(t, g, ""); n != base {
			t.Fatalf("%d series, want the baseline %d", n, base)
		}

		add(addr)
		hitUntil(t, c, pu+"/x", addr, 4)
		if v := requestsSettled(t, g, addr, 1); v != 1 {
			t.Fatalf("a target that came back: requests_total = %v, want 1 (fresh series)", v)
		}
	})
}
