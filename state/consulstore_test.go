package state_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// watchEvent is one call of a Watch callback.
type watchEvent struct {
	doc *state.Doc
	ver uint64
	at  time.Time
}

// watcher runs st.Watch until the test ends and collects its calls and
// errors.
type watcher struct {
	t      *testing.T
	events chan watchEvent

	mu   sync.Mutex
	errs []error
}

func startWatch(t *testing.T, client *api.Client, key string, opts ...state.ConsulOption) (*state.ConsulStore, *watcher) {
	t.Helper()
	w := &watcher{t: t, events: make(chan watchEvent, 256)}
	opts = append([]state.ConsulOption{
		state.ConsulWatchWait(5 * time.Second),
		state.ConsulWatchBackoff(20*time.Millisecond, 300*time.Millisecond),
		state.ConsulWatchErrors(func(err error) {
			w.mu.Lock()
			w.errs = append(w.errs, err)
			w.mu.Unlock()
		}),
	}, opts...)
	st := state.NewConsulStore(client, key, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Watch(ctx, func(d *state.Doc, v uint64) {
			select {
			case w.events <- watchEvent{doc: d, ver: v, at: time.Now()}:
			default:
				t.Errorf("watch event buffer full; dropped version %d", v)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not return after its context ended")
		}
	})
	return st, w
}

// next returns the next event, failing the test after timeout.
func (w *watcher) next(timeout time.Duration) watchEvent {
	w.t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case <-time.After(timeout):
		w.t.Fatalf("no Watch call within %v (errors: %v)", timeout, w.errors())
		return watchEvent{}
	}
}

// until returns the first event with version v, failing the test after
// timeout or on an event for a version in forbidden.
func (w *watcher) until(v uint64, timeout time.Duration, forbidden ...uint64) watchEvent {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			w.t.Fatalf("no Watch call with version %d within %v (errors: %v)", v, timeout, w.errors())
		}
		ev := w.next(left)
		if ev.ver == v {
			return ev
		}
		if slices.Contains(forbidden, ev.ver) {
			w.t.Fatalf("Watch reported version %d, which it must not", ev.ver)
		}
	}
}

func (w *watcher) errors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// noEventPending fails if an event is queued.
func (w *watcher) noEventPending() {
	w.t.Helper()
	select {
	case ev := <-w.events:
		w.t.Errorf("unexpected Watch call with version %d", ev.ver)
	default:
	}
}

func TestConsulStore(t *testing.T) {
	agent := consultest.Start(t)
	client := agent.Client

	t.Run("RoundTrip", func(t *testing.T) {
		ctx := context.Background()
		st := state.NewConsulStore(client, "/outrigger/test/roundtrip")
		if st.Key() != "outrigger/test/roundtrip" {
			t.Errorf("Key() = %q", st.Key())
		}
		doc, v, err := st.Load(ctx)
		if err != nil || v != 0 || !reflect.DeepEqual(doc, &state.Doc{}) {
			t.Fatalf("Load of a missing key = %+v, %d, %v", doc, v, err)
		}
		want := sampleDoc()
		v1, err := st.Save(ctx, want, 0)
		if err != nil || v1 == 0 {
			t.Fatalf("Save = %d, %v", v1, err)
		}
		pair, _, err := client.KV().Get(st.Key(), nil)
		if err != nil || pair == nil {
			t.Fatalf("KV get: %v, %v", pair, err)
		}
		if pair.ModifyIndex != v1 {
			t.Errorf("Save returned %d, the key's ModifyIndex is %d", v1, pair.ModifyIndex)
		}
		got, v, err := state.NewConsulStore(client, st.Key()).Load(ctx)
		if err != nil || v != v1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("Load = %d, %v; equal %v", v, err, reflect.DeepEqual(got, want))
		}
		// Unrelated writes move Consul's index, not the version.
		if _, err := client.KV().Put(&api.KVPair{Key: "outrigger/test/other", Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
		v2, err := st.Save(ctx, &state.Doc{}, v1)
		if err != nil || v2 <= v1 {
			t.Fatalf("second Save = %d, %v", v2, err)
		}
		if pair, _, err := client.KV().Get(st.Key(), nil); err != nil || pair.ModifyIndex != v2 {
			t.Errorf("second Save returned %d, ModifyIndex %v, %v", v2, pair, err)
		}
		if got, v, err := st.Load(ctx); err != nil || v != v2 || !reflect.DeepEqual(got, &state.Doc{}) {
			t.Errorf("Load = %+v, %d, %v", got, v, err)
		}
		// Consul does not touch a key whose value does not change: such
		// a Save succeeds and returns prev.
		v3, err := st.Save(ctx, &state.Doc{}, v2)
		if err != nil || v3 != v2 {
			t.Errorf("Save of the same value = %d, %v; want %d", v3, err, v2)
		}
		if _, err := st.Save(ctx, &state.Doc{}, v2-1); err != state.ErrConflict {
			t.Errorf("Save of the same value on a stale version = %v; want ErrConflict", err)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		ctx := context.Background()
		const key = "outrigger/test/conflict"
		a, b := state.NewConsulStore(client, key), state.NewConsulStore(client, key)
		v0, err := a.Save(ctx, &state.Doc{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Save(ctx, &state.Doc{}, 0); err != state.ErrConflict {
			t.Fatalf("create over an existing key = %v; want ErrConflict", err)
		}
		// Both read v0; a wins, b gets ErrConflict and retries on a's
		// version, as the gateway's Mutate does.
		da, va, _ := a.Load(ctx)
		db, vb, _ := b.Load(ctx)
		if va != v0 || vb != v0 {
			t.Fatalf("loaded %d and %d; want %d", va, vb, v0)
		}
		addRoute("from-a")(da)
		va2, err := a.Save(ctx, da, va)
		if err != nil {
			t.Fatal(err)
		}
		addRoute("from-b")(db)
		if _, err := b.Save(ctx, db, vb); err != state.ErrConflict {
			t.Fatalf("b.Save on a stale version = %v; want ErrConflict", err)
		}
		vb2, attempts, err := rmwUpdate(ctx, b, addRoute("from-b"))
		if err != nil || attempts != 1 || vb2 <= va2 {
			t.Fatalf("b's retry = %d after %d attempts, %v (a saved %d)", vb2, attempts, err, va2)
		}
		doc, v, err := a.Load(ctx)
		if err != nil || v != vb2 {
			t.Fatalf("Load = %d, %v", v, err)
		}
		if got := routeNames(doc); !slices.Equal(got, []string{"from-a", "from-b"}) {
			t.Errorf("routes = %v; want both changes", got)
		}
		// A version from nowhere conflicts too.
		if _, err := a.Save(ctx, doc, v+1000); err != state.ErrConflict {
			t.Errorf("Save on a future version = %v; want ErrConflict", err)
		}
		// Many writers through two stores (two sidecars).
		k2 := "outrigger/test/conflict-many"
		checkConcurrentRMW(t, []state.Store{state.NewConsulStore(client, k2), state.NewConsulStore(client, k2)}, 6, 8)
	})

	t.Run("WatchLatency", func(t *testing.T) {
		ctx := context.Background()
		const key = "outrigger/test/watch"
		self, w := startWatch(t, client, key)
		// The first call reports the state at start: nothing yet.
		if ev := w.next(5 * time.Second); ev.ver != 0 || !reflect.DeepEqual(ev.doc, &state.Doc{}) {
			t.Fatalf("first call = %d, %+v; want version 0, empty", ev.ver, ev.doc)
		}
		other := state.NewConsulStore(client, key)
		var lat []time.Duration
		for i := range 10 {
			_, _, err := rmwUpdate(ctx, other, addRoute("r"+string(rune('a'+i))))
			if err != nil {
				t.Fatal(err)
			}
			// Measure from just before the write.
			doc, v, err := other.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			addRoute("x" + string(rune('a'+i)))(doc)
			start := time.Now()
			nv, err := other.Save(ctx, doc, v)
			if err != nil {
				t.Fatal(err)
			}
			ev := w.until(nv, 5*time.Second)
			d := ev.at.Sub(start)
			lat = append(lat, d)
			if d > time.Second {
				t.Errorf("change %d reported after %v; want < 1s", nv, d)
			}
			if !reflect.DeepEqual(ev.doc, doc) {
				t.Errorf("reported doc differs from the saved one at version %d", nv)
			}
		}
		slices.Sort(lat)
		t.Logf("Watch latency over %d changes (Save call to callback): min %v, median %v, max %v",
			len(lat), lat[0], lat[len(lat)/2], lat[len(lat)-1])

		// The watching store's own writes are not reported; a later
		// write by the other store is, and its doc carries both.
		_, _, err := rmwUpdate(ctx, self, addRoute("own"))
		if err != nil {
			t.Fatal(err)
		}
		ownDoc, own, err := self.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		addRoute("own2")(ownDoc)
		own2, err := self.Save(ctx, ownDoc, own)
		if err != nil {
			t.Fatal(err)
		}
		nv, _, err := rmwUpdate(ctx, other, addRoute("after-own"))
		if err != nil {
			t.Fatal(err)
		}
		ev := w.until(nv, 5*time.Second, own, own2)
		if names := routeNames(ev.doc); !slices.Contains(names, "own2") || !slices.Contains(names, "after-own") {
			t.Errorf("routes at %d = %v", nv, names)
		}
		w.noEventPending()

		// Deleting the key is reported as version 0.
		if _, err := client.KV().Delete(key, nil); err != nil {
			t.Fatal(err)
		}
		if ev := w.next(5 * time.Second); ev.ver != 0 || !reflect.DeepEqual(ev.doc, &state.Doc{}) {
			t.Errorf("after delete: version %d, %+v; want 0, empty", ev.ver, ev.doc)
		}
		if errs := w.errors(); len(errs) > 0 {
			t.Errorf("watch errors: %v", errs)
		}
	})

	t.Run("CallerConverges", func(t *testing.T) {
		// A caller modeled on the gateway: it applies what it saves, and
		// what Watch reports unless it holds that version already. With a
		// foreign writer racing it, it must end on the stored state.
		ctx := context.Background()
		const key = "outrigger/test/converge"
		var (
			mu     sync.Mutex
			curDoc = &state.Doc{}
			curVer uint64
		)
		self := state.NewConsulStore(client, key, state.ConsulWatchWait(5*time.Second))
		wctx, cancel := context.WithCancel(ctx)
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			self.Watch(wctx, func(d *state.Doc, v uint64) {
				mu.Lock()
				defer mu.Unlock()
				if v != curVer {
					curDoc, curVer = d, v
				}
			})
		}()
		defer func() { cancel(); <-watchDone }()
		other := state.NewConsulStore(client, key)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, side := range []string{"own", "foreign"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 15 {
					name := fmt.Sprintf("%s-%d", side, i)
					if side == "foreign" {
						if _, _, err := rmwUpdate(ctx, other, addRoute(name)); err != nil {
							errs <- err
							return
						}
						continue
					}
					for attempt := 0; ; attempt++ {
						if attempt == 200 {
							errs <- fmt.Errorf("%s: too many conflicts", name)
							return
						}
						doc, v, err := self.Load(ctx)
						if err != nil {
							errs <- err
							return
						}
						addRoute(name)(doc)
						nv, err := self.Save(ctx, doc, v)
						if err == state.ErrConflict {
							continue
						}
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						curDoc, curVer = doc, nv
						mu.Unlock()
						break
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want, wantVer, err := self.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Routes) != 30 {
			t.Fatalf("stored state has %d routes; want 30", len(want.Routes))
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			doc, v := curDoc, curVer
			mu.Unlock()
			if v == wantVer {
				if !reflect.DeepEqual(doc, want) {
					t.Fatalf("caller holds version %d with another doc", v)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("caller holds version %d, stored %d", v, wantVer)
			}
			<-time.After(5 * time.Millisecond) // poll interval
		}
	})

	t.Run("BadValue", func(t *testing.T) {
		ctx := context.Background()
		const key = "outrigger/test/bad"
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte("{not json")}, nil); err != nil {
			t.Fatal(err)
		}
		st := state.NewConsulStore(client, key)
		if _, _, err := st.Load(ctx); err == nil || !strings.Contains(err.Error(), key) {
			t.Fatalf("Load of a bad value = %v; want an error naming the key", err)
		} else {
			t.Logf("Load: %v", err)
		}
		_, w := startWatch(t, client, key)
		// The bad value is reported as an error, never to fn.
		deadline := time.Now().Add(5 * time.Second)
		for len(w.errors()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no error reported for the bad value")
			}
			select {
			case ev := <-w.events:
				t.Fatalf("bad value reported to fn as version %d", ev.ver)
			case <-time.After(10 * time.Millisecond):
			}
		}
		// Repairing it (on its version) is reported.
		pair, _, err := client.KV().Get(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		nv, err := st.Save(ctx, sampleDoc(), pair.ModifyIndex)
		if err != nil {
			t.Fatal(err)
		}
		if ev := w.next(5 * time.Second); ev.ver != nv || !reflect.DeepEqual(ev.doc, sampleDoc()) {
			t.Errorf("after repair: version %d (want %d)", ev.ver, nv)
		}
	})

	t.Run("Unusable", func(t *testing.T) {
		ctx := context.Background()
		for _, c := range []struct {
			client *api.Client
			key    string
		}{{nil, "k"}, {client, ""}, {client, "/"}} {
			var got error
			st := state.NewConsulStore(c.client, c.key, state.ConsulWatchErrors(func(err error) { got = err }))
			if _, _, err := st.Load(ctx); err == nil {
				t.Errorf("%+v: Load succeeded", c)
			}
			if _, err := st.Save(ctx, &state.Doc{}, 0); err == nil {
				t.Errorf("%+v: Save succeeded", c)
			}
			st.Watch(ctx, func(*state.Doc, uint64) { t.Error("fn called") })
			if got == nil {
				t.Errorf("%+v: Watch reported no error", c)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		st := state.NewConsulStore(client, "outrigger/test/canceled")
		if _, err := st.Save(cctx, &state.Doc{}, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Save with a canceled context = %v", err)
		}
	})
}

// TestConsulStoreWatchRecovers kills the agent (a dev agent: it comes back
// empty, with indexes starting over) and checks that Watch reports the
// first write made after the restart.
func TestConsulStoreWatchRecovers(t *testing.T) {
	ctx := context.Background()
	agent := consultest.Start(t)
	const key = "outrigger/test/restart"
	self, w := startWatch(t, agent.Client, key)
	if ev := w.next(5 * time.Second); ev.ver != 0 {
		t.Fatalf("first call: version %d", ev.ver)
	}
	other := state.NewConsulStore(agent.Client, key)
	v1, _, err := rmwUpdate(ctx, other, addRoute("before"))
	if err != nil {
		t.Fatal(err)
	}
	w.until(v1, 5*time.Second)
	// The watching store writes too, until its version is well above
	// what a fresh agent reaches soon, so that after the restart the new
	// versions are below its own last one (the reset path).
	var own uint64
	for i := 0; i < 200 && own < 100; i++ {
		if own, _, err = rmwUpdate(ctx, self, addRoute(fmt.Sprintf("own-%d", i))); err != nil {
			t.Fatal(err)
		}
	}

	agent.Kill()
	down := time.Now()
	agent.Restart()
	up := time.Now()
	t.Logf("agent down and restarted in %v", up.Sub(down).Round(time.Millisecond))

	// Consul lost the key: that is reported as version 0.
	ev := w.until(0, 15*time.Second)
	t.Logf("key loss reported %v after the restart", ev.at.Sub(up).Round(time.Millisecond))

	_, v, err := other.Load(ctx)
	if err != nil || v != 0 {
		t.Fatalf("Load after restart = %d, %v", v, err)
	}
	start := time.Now()
	v2, _, err := rmwUpdate(ctx, other, addRoute("after"))
	if err != nil {
		t.Fatal(err)
	}
	if v2 >= own {
		t.Fatalf("the new version %d is not below the old own version %d: the test does not cover the reset", v2, own)
	}
	ev = w.until(v2, 5*time.Second)
	if got := routeNames(ev.doc); !slices.Equal(got, []string{"after"}) {
		t.Errorf("routes after restart = %v", got)
	}
	t.Logf("first write after the restart (version %d, own version before %d) reported in %v; %d watch errors during the outage",
		v2, own, ev.at.Sub(start).Round(time.Microsecond), len(w.errors()))
	if len(w.errors()) == 0 {
		t.Errorf("no watch error reported during the outage")
	}
}

// TestConsulStoreWatchGracefulRestart: a dev agent stopped gracefully
// answers the blocking query in flight early, without progress; the next
// query reaches the restarted agent, where the key was written again at a
// version far below the old one. Consul blocks a query whose index is
// above the key's until the key changes: the watch must not wait there
// for the whole wait time, it must report the new state at once.
func TestConsulStoreWatchGracefulRestart(t *testing.T) {
	ctx := context.Background()
	agent := consultest.Start(t)
	const key = "outrigger/test/graceful"
	// The early answer's delay (1-2s) outlasts the agent's restart, so the
	// query after it goes to the new agent.
	_, w := startWatch(t, agent.Client, key, state.ConsulWatchWait(20*time.Second), state.ConsulWatchBackoff(2*time.Second, 2*time.Second))
	other := state.NewConsulStore(agent.Client, key)
	var v uint64
	for i := 0; i < 200 && v < 100; i++ {
		var err error
		if v, _, err = rmwUpdate(ctx, other, addRoute(fmt.Sprintf("r-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	w.until(v, 5*time.Second)

	agent.Restart()
	v2, _, err := rmwUpdate(ctx, other, addRoute("after"))
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	if v2 >= v {
		t.Fatalf("the new version %d is not below the old one %d: the test does not cover the stale index", v2, v)
	}
	ev := w.until(v2, 10*time.Second)
	if got := routeNames(ev.doc); !slices.Equal(got, []string{"after"}) {
		t.Errorf("routes after the restart = %v", got)
	}
	t.Logf("version %d (old version %d) reported %v after it was written", v2, v, ev.at.Sub(written).Round(time.Millisecond))
}
