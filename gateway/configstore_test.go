package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/state"
)

// memStore is a state.Store in memory with check-and-set versions, as the
// file and Consul stores have. put writes as another sidecar would. With
// block set, Save signals entered and waits for block to close; with
// loseAck set, Save persists and then fails (the process dies between
// saving and committing, or the answer is lost).
type memStore struct {
	mu      sync.Mutex
	doc     *state.Doc
	version uint64
	saves   int
	block   chan struct{}
	entered chan struct{}
	loseAck bool
}

func (m *memStore) Load(context.Context) (*state.Doc, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return &state.Doc{}, m.version, nil
	}
	return m.doc.Clone(), m.version, nil
}

func (m *memStore) Save(ctx context.Context, doc *state.Doc, prev uint64) (uint64, error) {
	m.mu.Lock()
	block, entered := m.block, m.entered
	m.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev != m.version {
		return 0, state.ErrConflict
	}
	m.doc, m.version = doc.Clone(), m.version+1
	m.saves++
	if m.loseAck {
		return 0, errors.New("connection reset before the answer")
	}
	return m.version, nil
}

func (m *memStore) Watch(context.Context, func(*state.Doc, uint64)) {}

// put stores doc as another writer would and returns its version.
func (m *memStore) put(doc *state.Doc) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.doc, m.version = doc.Clone(), m.version+1
	return m.version
}

func (m *memStore) stored() (*state.Doc, uint64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.doc.Clone(), m.version, m.saves
}

func storeGateway(t *testing.T, st state.Store) *Gateway {
	t.Helper()
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop(), Store: st, LoadState: true})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// markDown marks addr of u1 unhealthy.
func markDown(addr string) func(*state.Doc) error {
	return func(d *state.Doc) error {
		if d.Marks == nil {
			d.Marks = map[string]map[string]string{}
		}
		if d.Marks["u1"] == nil {
			d.Marks["u1"] = map[string]string{}
		}
		d.Marks["u1"][addr] = "unhealthy"
		return nil
	}
}

func overrideOn(up string) *state.Doc {
	w := 7
	return &state.Doc{Overrides: []state.Override{{ID: "remote", Upstream: up, Target: "127.0.0.1:7001", Weight: &w}}}
}

// TestProbesDoNotWaitForTheStore: while an admin change waits for a slow
// store, /ready, /status and /metrics answer at once; the change lands
// when the store answers.
func TestProbesDoNotWaitForTheStore(t *testing.T) {
	st := &memStore{}
	g := storeGateway(t, st)
	st.mu.Lock()
	st.block, st.entered = make(chan struct{}), make(chan struct{}, 1)
	st.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- g.Mutate(context.Background(), markDown("127.0.0.1:7001")) }()
	select {
	case <-st.entered:
	case <-time.After(waitTimeout):
		t.Fatal("Mutate never reached the store")
	}
	for _, path := range []string{"/ready", "/status", "/metrics"} {
		answered := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			answered <- rec.Code
		}()
		select {
		case code := <-answered:
			t.Logf("GET %s during the save: %d", path, code)
		case <-time.After(waitTimeout):
			t.Fatalf("GET %s waited for the store's Save", path)
		}
	}
	if s := g.Status().AdminLayer; s.Version != 0 {
		t.Errorf("status during the save shows version %d, want the layer in force (0)", s.Version)
	}
	close(st.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := g.Status().AdminLayer; s.Version != 1 || s.State != admin.LayerInSync {
		t.Errorf("after the save: %+v, want in sync at version 1", s)
	}
}

// TestStoreConflictAdopts: a change over a layer another sidecar replaced
// meanwhile adopts that layer and is made again on top of it.
func TestStoreConflictAdopts(t *testing.T) {
	st := &memStore{}
	g := storeGateway(t, st)
	st.put(overrideOn("u1"))
	calls := 0
	err := g.Mutate(context.Background(), func(d *state.Doc) error {
		calls++
		return markDown("127.0.0.1:7002")(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, v, _ := st.stored()
	if calls != 2 || v != 2 || len(doc.Overrides) != 1 || doc.Marks["u1"]["127.0.0.1:7002"] != "unhealthy" {
		t.Fatalf("fn called %d times; store at version %d holds %+v; want 2 calls, version 2 with the remote override and the mark", calls, v, doc)
	}
	if s := g.Status().AdminLayer; s.Version != 2 || len(g.Doc().Overrides) != 1 {
		t.Errorf("gateway runs version %d with %d overrides, want 2 with 1", s.Version, len(g.Doc().Overrides))
	}
}

// TestStoreAdoptionThatDoesNotBuild: a stored layer that does not build
// here (learnt through a conflict, or the watch) is not applied; changes
// are refused with 409 and nothing is written over it; a good layer
// written later is adopted and changes work again.
func TestStoreAdoptionThatDoesNotBuild(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	g := storeGateway(t, st)
	bad := st.put(overrideOn("nope"))
	for i := range 2 { // through the conflict, then knowing the version
		err := g.Mutate(ctx, markDown("127.0.0.1:7001"))
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
			t.Fatalf("attempt %d: Mutate over a layer that does not build = %v, want a 409", i, err)
		}
	}
	if doc, v, saves := st.stored(); v != bad || saves != 0 || doc.Overrides[0].Upstream != "nope" {
		t.Fatalf("store at version %d after %d saves holds %+v, want the other writer's layer untouched", v, saves, doc)
	}
	if s := g.Status().AdminLayer; s.State != admin.LayerNotApplied || s.Version != 0 || s.StoreVersion != bad || s.Error == "" {
		t.Errorf("admin layer %+v, want not_applied at 0 with store version %d", s, bad)
	}
	if _, _, err := g.Layer(); err == nil {
		t.Error("Layer answered while the stored layer does not build")
	}

	good := st.put(overrideOn("u1"))
	g.remoteChange(ctx, overrideOn("u1"), good)
	if s := g.Status().AdminLayer; s.State != admin.LayerInSync || s.Version != good {
		t.Fatalf("after a good layer: %+v, want in sync at %d", s, good)
	}
	if err := g.Mutate(ctx, markDown("127.0.0.1:7001")); err != nil {
		t.Fatal(err)
	}
	g.remoteChange(ctx, overrideOn("nope"), st.put(overrideOn("nope")))
	if s := g.Status().AdminLayer; s.State != admin.LayerNotApplied || s.Version != good+1 {
		t.Errorf("after a bad layer through the watch: %+v, want not_applied, still at %d", s, good+1)
	}
	if len(g.Doc().Marks) != 1 {
		t.Error("the layer in force was replaced by one that does not build")
	}
}

// TestStoreCrashBetweenSaveAndCommit: a change the store persisted but
// whose answer never came is not committed; a gateway started on the
// store runs it, and the next change of the first gateway adopts it
// (through the conflict) instead of overwriting it.
func TestStoreCrashBetweenSaveAndCommit(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	g := storeGateway(t, st)
	st.mu.Lock()
	st.loseAck = true
	st.mu.Unlock()
	if err := g.Mutate(ctx, markDown("127.0.0.1:7001")); err == nil {
		t.Fatal("Mutate succeeded though the store's answer was lost")
	}
	if len(g.Doc().Marks) != 0 || g.Status().AdminLayer.Version != 0 {
		t.Fatal("a change without the store's acknowledgement was committed")
	}
	st.mu.Lock()
	st.loseAck = false
	st.mu.Unlock()

	restarted := storeGateway(t, st)
	if s := restarted.Status().AdminLayer; s.Version != 1 || len(restarted.Doc().Marks["u1"]) != 1 {
		t.Fatalf("a restart on the store runs %+v with marks %v, want version 1 with the persisted mark", s, restarted.Doc().Marks)
	}
	if err := g.Mutate(ctx, markDown("127.0.0.1:7002")); err != nil {
		t.Fatal(err)
	}
	if doc, v, _ := st.stored(); v != 2 || len(doc.Marks["u1"]) != 2 {
		t.Fatalf("store at version %d holds marks %v, want both changes at version 2", v, doc.Marks)
	}
}

// TestCompareAndSetStaleRevision: a layer computed from a revision that
// is no longer in force is refused with a conflict and not saved.
func TestCompareAndSetStaleRevision(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	g := storeGateway(t, st)
	doc, rev, err := g.Layer()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Mutate(ctx, markDown("127.0.0.1:7001")); err != nil {
		t.Fatal(err)
	}
	_ = markDown("127.0.0.1:7002")(doc)
	if _, err := g.CompareAndSet(ctx, rev, doc, nil); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("CompareAndSet on a stale revision = %v, want a conflict", err)
	}
	if _, v, saves := st.stored(); v != 1 || saves != 1 {
		t.Fatalf("store at version %d after %d saves, want 1 and 1", v, saves)
	}
}
