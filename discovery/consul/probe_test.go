package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// scriptedLeader is an agent's /v1/status/leader whose every answer the
// test hands out: each request announces itself on arrived, then waits for
// its answer (a status code and a body).
type scriptedLeader struct {
	srv     *httptest.Server
	arrived chan struct{}
	answers chan leaderAnswer
}

type leaderAnswer struct {
	code int
	body string
}

func newScriptedLeader(t *testing.T) *scriptedLeader {
	t.Helper()
	s := &scriptedLeader{arrived: make(chan struct{}), answers: make(chan leaderAnswer)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status/leader" || r.Header.Get("X-Consul-Token") != "" {
			http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		select {
		case s.arrived <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		select {
		case a := <-s.answers:
			w.WriteHeader(a.code)
			fmt.Fprint(w, a.body)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// next waits for the next probe and answers it.
func (s *scriptedLeader) next(t *testing.T, a leaderAnswer) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(waitTimeout):
		t.Fatalf("no probe within %s", waitTimeout)
	}
	s.answers <- a
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: not woken within %s", what, waitTimeout)
	}
}

func TestProbeSharedAndWakesOnLeader(t *testing.T) {
	agent := newScriptedLeader(t)
	ps := NewProbes()
	ps.every = 5 * time.Millisecond
	host := agent.srv.Listener.Addr().String()
	p := ps.get("http", host, nil)
	if q := ps.get("http", "http://"+host, nil); q != p {
		t.Fatalf("the same agent with an http:// prefix got a probe of its own")
	}
	if q := ps.get("https", host, nil); q == p {
		t.Fatalf("https and http to one address share a probe")
	}
	if q := ps.get("http", "unix:///run/consul.sock", nil); q != nil {
		t.Fatalf("a unix socket address got a probe")
	}

	// Five waiters (five watchers of one agent, each after a 5xx answer)
	// and one probe loop: the script answers each request in turn, so a
	// second loop would take answers meant for the first and a waiter would
	// be woken by a probe that failed, or never.
	var ups []<-chan struct{}
	for range 5 {
		up, release := p.await(false)
		defer release()
		ups = append(ups, up)
	}
	noneWoken := func(when string) {
		t.Helper()
		for i, up := range ups {
			if closed(up) {
				t.Fatalf("waiter %d woken %s", i, when)
			}
		}
	}
	// The agent answering all along is no news: their 5xx had another
	// cause, and their backoff runs its course.
	agent.next(t, leaderAnswer{http.StatusOK, `"127.0.0.1:8300"`})
	agent.next(t, leaderAnswer{http.StatusInternalServerError, "shutting down"})
	noneWoken("while the agent had been answering all along")
	agent.next(t, leaderAnswer{http.StatusOK, `""`}) // up, no leader yet
	noneWoken("by a probe that failed")
	// A waiter arriving while a probe is in flight is not woken by it: that
	// probe may predate the failure the waiter saw.
	select {
	case <-agent.arrived:
	case <-time.After(waitTimeout):
		t.Fatalf("no probe within %s", waitTimeout)
	}
	late, releaseLate := p.await(true) // its own call got no answer
	defer releaseLate()
	agent.answers <- leaderAnswer{http.StatusOK, `"127.0.0.1:8300"`}
	for i, up := range ups {
		waitClosed(t, fmt.Sprintf("waiter %d", i), up)
	}
	if closed(late) {
		t.Fatalf("the late waiter was woken by a probe sent before it arrived")
	}
	agent.next(t, leaderAnswer{http.StatusOK, `"127.0.0.1:8300"`})
	waitClosed(t, "late waiter", late)

	p.mu.Lock()
	idle := p.stop == nil && len(p.waiters) == 0
	p.mu.Unlock()
	if !idle {
		t.Errorf("the probe loop still runs with nobody waiting")
	}
}

func TestProbeStopsWhenWaitersLeave(t *testing.T) {
	agent := newScriptedLeader(t)
	ps := NewProbes()
	ps.every = 5 * time.Millisecond
	p := ps.get("http", agent.srv.Listener.Addr().String(), nil)
	up, release := p.await(true)
	agent.next(t, leaderAnswer{http.StatusServiceUnavailable, ""})
	release()
	p.mu.Lock()
	idle := p.stop == nil
	p.mu.Unlock()
	if !idle {
		t.Errorf("the probe loop still runs after its only waiter left")
	}
	if closed(up) {
		t.Errorf("a waiter was woken by a failed probe")
	}
	var nilProbe *probe
	ch, rel := nilProbe.await(true)
	rel()
	if ch != nil {
		t.Errorf("a nil probe returned a wake channel")
	}
}

func TestAgentTrouble(t *testing.T) {
	// A real refused connection, through the api client as the Source
	// makes it.
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.Listener.Addr().String()
	ln.Close()
	o := defaultOptions()
	c, err := newClient(addr, "http", "", "", time.Second, &o)
	if err != nil {
		t.Fatal(err)
	}
	_, _, refused := c.Health().Service("web", "", false, (&api.QueryOptions{}).WithContext(context.Background()))
	if refused == nil {
		t.Fatal("a query to a closed port succeeded")
	}
	for _, tc := range []struct {
		err         error
		probe, down bool
	}{
		{refused, true, true},
		{fmt.Errorf("consul: register: %w", &url.Error{Op: "Put", URL: "http://x", Err: errors.New("EOF")}), true, true},
		{api.StatusError{Code: http.StatusInternalServerError, Body: "No cluster leader"}, true, false},
		{fmt.Errorf("wrapped: %w", &api.StatusError{Code: http.StatusBadGateway}), true, false},
		{api.StatusError{Code: http.StatusForbidden, Body: "Permission denied"}, false, false},
		{api.StatusError{Code: http.StatusTooManyRequests}, false, false},
		{errors.New("decoding body"), false, false},
	} {
		if probe, down := agentTrouble(tc.err); probe != tc.probe || down != tc.down {
			t.Errorf("agentTrouble(%v) = %v, %v; want %v, %v", tc.err, probe, down, tc.probe, tc.down)
		}
	}
}
