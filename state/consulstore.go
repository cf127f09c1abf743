package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/discovery/consul"
)

// ConsulStore keeps the Doc as JSON at one Consul KV key, shared by a fleet
// of sidecars.
//
// Contract:
//   - The version is the key's ModifyIndex; a missing key is version 0 and
//     an empty Doc. Load reads with RequireConsistent (the leader confirms
//     it is still the leader), so a Load before a Save sees every
//     acknowledged write.
//   - Save is a check-and-set on the ModifyIndex (prev 0: create only if
//     the key is absent), sent as a one-operation transaction (PUT
//     /v1/txn, verb "cas") rather than PUT /v1/kv?cas=: the transaction
//     answers with the written entry's ModifyIndex, atomically, whereas
//     reading the key back after a KV CAS could see a later write by
//     someone else. Consul acknowledges after the Raft commit, so a
//     returned version is durable on a quorum of servers. A rolled-back
//     transaction is ErrConflict when the key's version is no longer prev,
//     else an error carrying Consul's reasons. A transport error leaves the
//     outcome unknown (the write may have happened): it is returned as is.
//     Consul leaves a key whose value does not change untouched, so a Save
//     of the stored content succeeds and returns prev (no Watch wakes up).
//     Values are limited by Consul's kv_max_value_size (512 KiB default).
//   - Watch runs blocking queries on the key (default consistency,
//     WaitTime 20s by default: the client's HTTP timeout must exceed it by
//     wait/16 plus a margin). It calls fn, from Watch's goroutine and one
//     call at a time, with each state of the key it observes that differs
//     from the last one it reported — except the versions this store's own
//     Save wrote, which the caller already holds (it applies what it
//     saved). The first call reports the state found when Watch starts
//     (unless this store wrote it), so nothing written between the
//     caller's Load and Watch is missed; it may repeat the version the
//     caller loaded. A key that disappears (deleted, or Consul lost its
//     data) is reported as version 0 with an empty Doc.
//   - Versions normally grow. They go back only when Consul lost its data
//     (a dev agent restarted, a snapshot restored): the watch then resets
//     its index and reports the lower version. So callers should take what
//     fn reports as the current state, and skip only a call whose version
//     equals the one they hold.
//   - Own writes are recognized by version: before deciding on an
//     observation, Watch waits for this store's Saves under way to finish
//     (it may see a write before its Save knows the version). The same
//     ConsulStore must therefore serve both Save and Watch; a second store
//     on the same key sees the first one's writes as foreign.
//   - An observation older than this store's last Save (a blocking answer
//     read just before that Save) is re-read consistently before being
//     reported, so it does not roll the caller back. When a Save completes
//     while fn runs (so the caller may have applied its own newer version
//     before fn applied an older one), the next observation is reported
//     even if it is this store's own version, which puts the caller back
//     on the newest state.
//   - Failed queries go to the handler set with ConsulWatchErrors and are
//     retried with exponential backoff and jitter (100ms doubling to 10s
//     by default, the upper half of each delay random); the wait index is
//     reset after an error, so the first answer after an outage is fresh.
//     Early blocking answers without progress are delayed the same way,
//     then followed by a query that does not block: an agent that answers
//     early may be shutting down, and a cursor above the key's index on
//     the restarted agent (which lost data) would block until the key
//     changes instead of reporting its new state. A
//     value that does not decode goes to the handler too, is never
//     reported to fn, and the watch waits for the next change.
//   - No state is shared between ConsulStores.
type ConsulStore struct {
	client   *api.Client
	key      string
	waitTime time.Duration
	backMin  time.Duration
	backMax  time.Duration
	onError  func(error)

	mu       sync.Mutex
	lastOwn  uint64        // version returned by the last successful Save
	saves    uint64        // number of successful Saves
	inflight int           // Saves under way
	idle     chan struct{} // closed when inflight drops to 0; nil while 0
}

var _ Store = (*ConsulStore)(nil)

// ConsulOption tunes a ConsulStore.
type ConsulOption func(*ConsulStore)

// ConsulWatchWait sets the blocking query wait time (default 5s; Consul
// caps it at 10 minutes). It bounds how long a sidecar can miss a change
// after its agent restarted with less data (a -dev agent loses every key):
// a blocking query whose cursor is above the restarted agent's index
// waits out its whole wait time before the cursor can be reset.
func ConsulWatchWait(d time.Duration) ConsulOption {
	return func(s *ConsulStore) {
		if d > 0 {
			s.waitTime = d
		}
	}
}

// ConsulWatchBackoff sets Watch's retry backoff: from min doubling up to
// max, jittered (defaults 100ms and 10s).
func ConsulWatchBackoff(min, max time.Duration) ConsulOption {
	return func(s *ConsulStore) {
		if min > 0 && max >= min {
			s.backMin, s.backMax = min, max
		}
	}
}

// ConsulWatchErrors sets the handler of Watch's errors (default: none). It
// is called from Watch's goroutine.
func ConsulWatchErrors(fn func(error)) ConsulOption {
	return func(s *ConsulStore) { s.onError = fn }
}

// NewConsulStore returns a store for the Doc at key (a leading "/" is
// dropped).
func NewConsulStore(client *api.Client, key string, opts ...ConsulOption) *ConsulStore {
	s := &ConsulStore{
		client:   client,
		key:      strings.TrimPrefix(key, "/"),
		waitTime: 5 * time.Second,
		backMin:  100 * time.Millisecond,
		backMax:  10 * time.Second,
	}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// Key returns the KV key.
func (s *ConsulStore) Key() string { return s.key }

func (s *ConsulStore) usable() error {
	switch {
	case s.client == nil:
		return errors.New("state: consul store: no client")
	case s.key == "":
		return errors.New("state: consul store: empty key")
	}
	return nil
}

// Load reads the key consistently.
func (s *ConsulStore) Load(ctx context.Context) (*Doc, uint64, error) {
	if err := s.usable(); err != nil {
		return nil, 0, err
	}
	pair, _, err := s.get(ctx, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		return nil, 0, err
	}
	return s.decode(pair)
}

// Save writes doc if the key's ModifyIndex is still prev.
func (s *ConsulStore) Save(ctx context.Context, doc *Doc, prev uint64) (uint64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if doc == nil {
		doc = &Doc{}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return 0, fmt.Errorf("state: encoding state for consul key %q: %w", s.key, err)
	}
	var saved uint64
	s.beginSave()
	defer func() { s.endSave(saved) }()
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.key, Value: b, Index: prev}}}
	ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("state: saving consul key %q (outcome unknown): %w", s.key, err)
	}
	if !ok {
		pair, _, gerr := s.get(ctx, &api.QueryOptions{RequireConsistent: true})
		if gerr == nil && versionOf(pair) != prev {
			return 0, ErrConflict
		}
		var why []string
		if resp != nil {
			for _, e := range resp.Errors {
				why = append(why, e.What)
			}
		}
		if gerr != nil {
			why = append(why, gerr.Error())
		}
		return 0, fmt.Errorf("state: saving consul key %q: transaction rolled back: %s", s.key, strings.Join(why, "; "))
	}
	var ver uint64
	if resp != nil {
		for _, r := range resp.Results {
			if r != nil && r.KV != nil && r.KV.Key == s.key {
				ver = r.KV.ModifyIndex
			}
		}
	}
	if ver == 0 {
		return 0, fmt.Errorf("state: saving consul key %q: the write succeeded but Consul's answer carries no ModifyIndex", s.key)
	}
	saved = ver
	return ver, nil
}

// beginSave and endSave track the Saves under way, so Watch can tell this
// store's writes from others' (it may see a write before its Save has the
// version). endSave records a successful Save's version (saved != 0).
func (s *ConsulStore) beginSave() {
	s.mu.Lock()
	if s.inflight == 0 {
		s.idle = make(chan struct{})
	}
	s.inflight++
	s.mu.Unlock()
}

func (s *ConsulStore) endSave(saved uint64) {
	s.mu.Lock()
	if saved != 0 {
		s.lastOwn = saved
		s.saves++
	}
	s.inflight--
	if s.inflight == 0 {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// settled waits until no Save is under way and returns the last version
// this store saved and its Save count; ok is false when ctx ended first.
func (s *ConsulStore) settled(ctx context.Context) (last, saves uint64, ok bool) {
	for {
		s.mu.Lock()
		if s.inflight == 0 {
			last, saves = s.lastOwn, s.saves
			s.mu.Unlock()
			return last, saves, true
		}
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return 0, 0, false
		}
	}
}

// get reads the key with q (and ctx).
func (s *ConsulStore) get(ctx context.Context, q *api.QueryOptions) (*api.KVPair, *api.QueryMeta, error) {
	pair, meta, err := s.client.KV().Get(s.key, q.WithContext(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("state: reading consul key %q: %w", s.key, err)
	}
	return pair, meta, nil
}

func versionOf(pair *api.KVPair) uint64 {
	if pair == nil {
		return 0
	}
	return pair.ModifyIndex
}

// decode turns a KV pair into a Doc and its version.
func (s *ConsulStore) decode(pair *api.KVPair) (*Doc, uint64, error) {
	if pair == nil {
		return &Doc{}, 0, nil
	}
	doc := &Doc{}
	if err := json.Unmarshal(pair.Value, doc); err != nil {
		return nil, pair.ModifyIndex, fmt.Errorf("state: consul key %q (ModifyIndex %d) does not hold a valid state: %w", s.key, pair.ModifyIndex, err)
	}
	return doc, pair.ModifyIndex, nil
}

// own returns the last version this store saved and the Save count.
func (s *ConsulStore) own() (last, saves uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOwn, s.saves
}

// forgetOwn drops the memory of this store's last version when it is
// still v: Consul lost it.
func (s *ConsulStore) forgetOwn(v uint64) {
	s.mu.Lock()
	if s.lastOwn == v {
		s.lastOwn = 0
	}
	s.mu.Unlock()
}

// After an early answer (an agent shutting down answers its blocking
// queries at once), Watch blocks for at most waryWait per query during
// waryFor: the agent may come back with less data, and a blocking query
// whose cursor is above the restarted agent's index would otherwise hold
// for the whole wait time, hiding every change made meanwhile.
const (
	waryWait = time.Second
	waryFor  = 15 * time.Second
)

// Watch calls fn with the key's states written by others until ctx ends;
// see the type's contract.
func (s *ConsulStore) Watch(ctx context.Context, fn func(*Doc, uint64)) {
	if err := s.usable(); err != nil {
		s.report(err)
		return
	}
	var (
		waitIdx  uint64    // blocking query cursor
		reported uint64    // last version reported to fn or skipped
		haveRep  bool      // reported is meaningful
		force    bool      // report the next observation whatever it is
		failures int       // consecutive errors
		spins    int       // consecutive early answers without progress
		recheck  bool      // this query reads without blocking after an early answer
		wary     time.Time // until then, block for at most waryWait (after an early answer)
	)
	fail := func(err error) bool {
		s.report(err)
		failures++
		waitIdx = 0
		return discovery.Sleep(ctx, s.backoff(failures))
	}
	for ctx.Err() == nil {
		start := time.Now()
		wait := s.waitTime
		if start.Before(wary) {
			wait = min(wait, waryWait)
		}
		pair, meta, err := s.get(ctx, &api.QueryOptions{WaitIndex: waitIdx, WaitTime: wait})
		if err != nil {
			if ctx.Err() != nil || !fail(err) {
				return
			}
			continue
		}
		failures = 0

		next := consul.NextIndex(waitIdx, meta.LastIndex)
		early := waitIdx != 0 && meta.LastIndex == waitIdx && time.Since(start) < wait/2
		switch {
		case early:
			spins++
		case !recheck:
			spins = 0
		}
		waitIdx = next
		if early {
			// An agent shutting down answers early; the next query may
			// reach it restarted with less data, where a cursor above the
			// key's index blocks until the key changes. Read without
			// blocking first, so that cursor is reset at once. That read
			// may still reach the old agent, so for a while queries
			// block briefly: a restarted agent answers a cursor above its
			// index after waryWait with a lower index, which resets it.
			waitIdx = 0
			wary = time.Now().Add(waryFor)
		}
		recheck = early

		ver := versionOf(pair)
		// A Save under way may have written what we see: let it finish,
		// so its version is known.
		lastOwn, saves, ok := s.settled(ctx)
		if !ok {
			return
		}
		if !force && ver < lastOwn {
			// Read before our last Save, or Consul lost data: read again,
			// consistently, to tell.
			pair, meta, err = s.get(ctx, &api.QueryOptions{RequireConsistent: true})
			if err != nil {
				if ctx.Err() != nil || !fail(err) {
					return
				}
				continue
			}
			waitIdx = max(meta.LastIndex, 1)
			if _, again, ok := s.settled(ctx); !ok {
				return
			} else if again != saves {
				waitIdx = 0 // another Save meanwhile: look again at once
				continue
			}
			ver = versionOf(pair)
			if ver < lastOwn {
				s.forgetOwn(lastOwn)
				lastOwn = 0
			}
		}

		report := false
		switch {
		case force:
			report = true
		case haveRep && ver == reported:
			// A wakeup without change (or a repeat): nothing for fn.
		case ver != 0 && ver == lastOwn:
			reported, haveRep = ver, true // our own write: the caller holds it
		default:
			report = true
		}
		if report {
			reported, haveRep, force = ver, true, false
			doc, v, derr := s.decode(pair)
			if derr != nil {
				s.report(derr)
			} else {
				fn(doc, v)
				if _, after := s.own(); after != saves {
					// A Save completed while fn ran: the caller may have
					// applied it before fn applied this older state.
					force, waitIdx = true, 0
				}
			}
		}

		if early && !discovery.Sleep(ctx, s.backoff(spins)) {
			return
		}
	}
}

func (s *ConsulStore) report(err error) {
	if s.onError != nil {
		s.onError(err)
	}
}

// backoff returns the delay before retry n (n ≥ 1): min doubling up to
// max, with the upper half jittered (a watch should not retry at once).
func (s *ConsulStore) backoff(n int) time.Duration {
	return discovery.Backoff(n, s.backMin, s.backMax, func(d time.Duration) time.Duration {
		half := d / 2
		return half + rand.N(d-half+1)
	})
}
