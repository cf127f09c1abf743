package state_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

func fleetStore(ag *consultest.Agent, prefix, group, id string, keep int) *state.FleetStore {
	return state.NewFleetStore(ag.Client, state.FleetOptions{Prefix: prefix, Group: group, ID: id, Keep: keep, WatchWait: 2 * time.Second})
}

func docWithRoute(name string) *state.Doc {
	return &state.Doc{Routes: map[string]*state.Route{name: {Name: name, Service: "s", Paths: []string{"/" + name}}}}
}

// TestFleetVersionsPublishAndPrune: numbered, hashed, immutable versions;
// the oldest beyond keep are deleted; the draft starts as the stable
// version's content.
func TestFleetVersionsPublishAndPrune(t *testing.T) {
	ag := consultest.Start(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	s := fleetStore(ag, prefix, "a", "a1", 3)

	if d, rev, err := s.LoadDraft(ctx); err != nil || rev != 0 || len(d.Routes) != 0 {
		t.Fatalf("empty group's draft: %v %d %v", d, rev, err)
	}
	var hashes []string
	for i := 1; i <= 5; i++ {
		v, err := s.Publish(ctx, state.Publication{Doc: docWithRoute(fmt.Sprint("r", i)), Author: "ann", Message: fmt.Sprint("change ", i), Source: "publish"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Number != uint64(i) || v.Hash != state.Hash(docWithRoute(fmt.Sprint("r", i))) {
			t.Fatalf("publish %d: got %+v", i, v)
		}
		hashes = append(hashes, v.Hash)
	}
	sorted := slices.Clone(hashes)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != 5 {
		t.Fatalf("hashes not distinct: %v", hashes)
	}
	vs, err := s.Versions(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var nums []uint64
	for _, v := range vs {
		nums = append(nums, v.Number)
		if v.Doc != nil || v.Author != "ann" {
			t.Fatalf("listed version: %+v", v)
		}
	}
	if !slices.Equal(nums, []uint64{5, 4, 3}) {
		t.Fatalf("kept versions %v, want [5 4 3]", nums)
	}
	if _, err := s.ReadVersion(ctx, "a", 2); err == nil {
		t.Fatal("version 2 should be pruned")
	}
	v4, err := s.ReadVersion(ctx, "a", 4)
	if err != nil || v4.Doc.Routes["r4"] == nil || v4.Message != "change 4" {
		t.Fatalf("version 4: %+v %v", v4, err)
	}
	doc, n, err := s.Load(ctx)
	if err != nil || n != 5 || doc.Routes["r5"] == nil {
		t.Fatalf("Load: %d %v", n, err)
	}
	d, rev, err := s.LoadDraft(ctx)
	if err != nil || rev != 0 || d.Routes["r5"] == nil {
		t.Fatalf("draft before any edit: %v %d %v", d, rev, err)
	}
	// Save (auto-publish) is a check-and-set on the target version.
	if _, err := s.Save(ctx, docWithRoute("x"), 4); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Save on a stale version: %v", err)
	}
	if n, err := s.Save(ctx, docWithRoute("x"), 5); err != nil || n != 6 {
		t.Fatalf("Save: %d %v", n, err)
	}
	// A head deleted by hand: numbers go on after the versions kept.
	if _, err := ag.Client.KV().Delete(prefix+"/a/head", nil); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Save(ctx, docWithRoute("y"), 0); err != nil || n != 7 {
		t.Fatalf("Save after the head's loss: %d %v", n, err)
	}
}

// TestFleetConcurrentPublishers: publishers racing on one group through
// separate stores never reuse a number and never lose one: every
// acknowledged publish is a distinct version holding its own content.
func TestFleetConcurrentPublishers(t *testing.T) {
	ag := consultest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	const writers, each = 4, 8
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := fleetStore(ag, prefix, "a", fmt.Sprint("w", w), 100)
			for i := range each {
				msg := fmt.Sprintf("w%d-%d", w, i)
				v, err := s.Publish(ctx, state.Publication{Doc: docWithRoute(msg), Author: "w", Message: msg, Source: "publish"})
				if err != nil {
					t.Errorf("%s: %v", msg, err)
					return
				}
				mu.Lock()
				if prev, dup := acked[v.Number]; dup {
					t.Errorf("version %d acknowledged twice: %s and %s", v.Number, prev, msg)
				}
				acked[v.Number] = msg
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	s := fleetStore(ag, prefix, "a", "reader", 100)
	for n := uint64(1); n <= writers*each; n++ {
		v, err := s.ReadVersion(ctx, "a", n)
		if err != nil {
			t.Fatalf("version %d: %v", n, err)
		}
		if v.Message != acked[n] || v.Doc.Routes[acked[n]] == nil {
			t.Fatalf("version %d holds %q, acknowledged as %q", n, v.Message, acked[n])
		}
	}
	h, _, err := s.ReadHead(ctx, "a")
	if err != nil || h.Version != writers*each || h.Latest != writers*each {
		t.Fatalf("head %+v %v", h, err)
	}
}

// TestFleetStageTargetsAndWatch: a staged publish is the target of the
// sidecars it selects only; Watch reports each change of target.
func TestFleetStageTargetsAndWatch(t *testing.T) {
	ag := consultest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	pub := fleetStore(ag, prefix, "a", "admin", 20)
	if _, err := pub.Publish(ctx, state.Publication{Doc: docWithRoute("one"), Source: "publish"}); err != nil {
		t.Fatal(err)
	}
	a1, a2 := fleetStore(ag, prefix, "a", "a1", 20), fleetStore(ag, prefix, "a", "a2", 20)
	got1, got2 := make(chan uint64, 16), make(chan uint64, 16)
	go a1.Watch(ctx, func(_ *state.Doc, v uint64) { got1 <- v })
	go a2.Watch(ctx, func(_ *state.Doc, v uint64) { got2 <- v })
	expect := func(ch chan uint64, want uint64, who string) {
		t.Helper()
		select {
		case v := <-ch:
			if v != want {
				t.Fatalf("%s: version %d, want %d", who, v, want)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no version %d", who, want)
		}
	}
	expect(got1, 1, "a1")
	expect(got2, 1, "a2")
	if _, err := pub.Publish(ctx, state.Publication{Doc: docWithRoute("two"), Source: "publish",
		Stage: &state.Stage{Sidecars: []string{"a1"}}}); err != nil {
		t.Fatal(err)
	}
	expect(got1, 2, "a1")
	// A publish is refused while the stage runs.
	var re *state.RefusedError
	if _, err := pub.Publish(ctx, state.Publication{Doc: docWithRoute("three")}); !errors.As(err, &re) {
		t.Fatalf("publish during a stage: %v", err)
	}
	if _, err := pub.UpdateHead(ctx, "", func(h *state.Head) error { h.Stage.Percent = 100; return nil }); err != nil {
		t.Fatal(err)
	}
	expect(got2, 2, "a2")
	select {
	case v := <-got1:
		t.Fatalf("a1 reported %d again", v)
	default:
	}
}

// TestFleetReportsLiveWithTheSession: a report is listed while its
// session lives and deleted with it; a new life of the same id takes the
// key over from its previous session.
func TestFleetReportsLiveWithTheSession(t *testing.T) {
	ag := consultest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("t%016x", rand.Uint64())
	s := fleetStore(ag, prefix, "a", "a1", 20)
	r1 := s.NewReporter(10 * time.Second)
	if err := r1.Report(ctx, state.Report{ID: "a1", Group: "a", Version: 3, Applied: true}); err != nil {
		t.Fatal(err)
	}
	// A second life (the first was killed: its session still lives).
	r2 := fleetStore(ag, prefix, "a", "a1", 20).NewReporter(10 * time.Second)
	if err := r2.Report(ctx, state.Report{ID: "a1", Group: "a", Version: 4, Applied: true}); err != nil {
		t.Fatal(err)
	}
	reps, err := s.Sidecars(ctx, "a")
	if err != nil || len(reps) != 1 || reps[0].Version != 4 {
		t.Fatalf("reports %+v %v", reps, err)
	}
	if err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if reps, err := s.Sidecars(ctx, "a"); err != nil || len(reps) != 0 {
		t.Fatalf("after the session ended: %+v %v", reps, err)
	}
}
