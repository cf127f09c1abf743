package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/discovery/consul"
)

// The gateway groups of fleet mode: a group's sidecars share published
// versions of the admin layer, kept in Consul KV under PREFIX/GROUP/:
//
//	head                 the group's Head (JSON): stable version, last
//	                     number used, the staged publish under way
//	versions/NNN…        one immutable Version each (number zero-padded to
//	                     20 digits, so keys sort by number)
//	draft                the draft Doc (groups that do not auto-publish)
//	sidecars/ID          each sidecar's Report, bound to its Consul session
//
// Contract:
//   - Version numbers come from check-and-set on head: a publish is one
//     transaction that checks head's ModifyIndex, creates versions/N+1
//     (create-only) and rewrites head. Concurrent publishers therefore
//     never reuse a number (the losing transaction rolls back whole and is
//     retried on the new head) and never lose one (a number is taken only
//     by a committed transaction). Consul acknowledges after the Raft
//     commit: an acknowledged publish survives any sidecar's death.
//   - A Version never changes once written; the oldest ones beyond the
//     keep count are deleted by the publish that makes them too old
//     (never the stable version, nor the one a stage started from).
//   - Hash is "sha256:" and the hex SHA-256 of the Doc's JSON encoding,
//     which is canonical: struct fields in declaration order, map keys
//     sorted (encoding/json). Equal content, equal hash.
//   - A sidecar runs Head.Target(its id): the stage's version when a
//     staged publish is running and selects it, else the stable version.
//   - As a Store, a FleetStore serves one sidecar: Load and Watch give
//     the Version this sidecar should run (its number is the version);
//     Save publishes a new version (auto-publish groups) when the target
//     is still prev and no stage runs.
//   - No state is shared between FleetStores.
type FleetStore struct {
	client *api.Client
	o      FleetOptions
	draft  *ConsulStore

	// head is the last head Watch (or any read) saw; nil before.
	head atomic.Pointer[Head]
	// ownIdx is the highest ModifyIndex of the head this store wrote.
	ownIdx atomic.Uint64
}

var _ Store = (*FleetStore)(nil)

// FleetOptions configure a FleetStore.
type FleetOptions struct {
	Prefix string // KV prefix of every group
	Group  string // this sidecar's group
	ID     string // this sidecar's id
	// Keep is how many versions are kept (≥ 1).
	Keep int
	// WatchWait is the blocking query wait (default 5s).
	WatchWait time.Duration
	// OnError receives Watch's errors (nil: dropped).
	OnError func(error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Version is one published version of a group's admin layer.
type Version struct {
	Number    uint64 `json:"version"`
	Hash      string `json:"hash"`
	Author    string `json:"author"`
	Message   string `json:"message"`
	CreatedAt int64  `json:"created_at"` // Unix seconds
	// Source is how it came to be: "admin" (an admin change in an
	// auto-publish group), "publish" (the draft), "rollback" or "promote".
	Source string `json:"source"`
	// From is what it copies: "5" (a rollback to version 5) or
	// "payments-test/5" (promoted from that group's version 5).
	From string `json:"from,omitempty"`
	Doc  *Doc   `json:"doc,omitempty"`
}

// Head is where a group stands.
type Head struct {
	// Version is the stable version: what every sidecar outside a
	// running stage runs (0: nothing published yet).
	Version uint64 `json:"version"`
	// Latest is the last version number used (a rolled-back stage's
	// number is not used again).
	Latest uint64 `json:"latest"`
	// Stage is the last staged publish (running or finished); nil when
	// the last publish was not staged.
	Stage *Stage `json:"stage,omitempty"`
}

// Stage is a staged publish: a version run first by a share of the
// group's sidecars, widened in steps, completed (it becomes the stable
// version) or rolled back (its sidecars return to From).
type Stage struct {
	Version uint64 `json:"version"`
	From    uint64 `json:"from"`
	// The sidecars it selects: those named, and those whose Bucket is
	// below Percent.
	Sidecars []string `json:"sidecars,omitempty"`
	Percent  float64  `json:"percent"`
	// Steps are the next percents, taken one at a time once the current
	// share ran the version cleanly for Interval (empty: widened by hand).
	Steps    []float64 `json:"steps,omitempty"`
	Step     int       `json:"step"` // index of the next step in Steps
	Interval Duration  `json:"interval"`
	// Bounds of the staged sidecars relative to the rest, over the
	// current step, once MinRequests were seen on the staged ones.
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"`
	MinRequests          int     `json:"min_requests"`
	State                string  `json:"state"` // running | completed | rolled_back
	Reason               string  `json:"reason,omitempty"`
	// StepSince is when the current step started (Unix milliseconds).
	StepSince int64 `json:"step_since"`
	// Baseline is each sidecar's counters when the step started.
	Baseline  map[string]Traffic `json:"baseline,omitempty"`
	UpdatedAt int64              `json:"updated_at"`
}

// Stage states.
const (
	StageRunning    = "running"
	StageCompleted  = "completed"
	StageRolledBack = "rolled_back"
)

// Traffic is a sidecar's proxied requests and errors since it started.
type Traffic struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// Report is what a sidecar tells its group about itself.
type Report struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// Version is the version it runs; Target the one its group's head
	// asks it to run.
	Version uint64 `json:"version"`
	Target  uint64 `json:"target"`
	// Applied is false while the target does not build with the
	// sidecar's configuration file (Error says why); it then keeps
	// running Version.
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"`
	// AutoPublish is the sidecar's fleet.auto_publish: its admin changes
	// are published at once (else they go to the group's draft).
	AutoPublish bool `json:"auto_publish"`
	// AppliedAt is when Version was applied, ReportedAt when the report
	// was written (Unix milliseconds).
	AppliedAt  int64 `json:"applied_at"`
	ReportedAt int64 `json:"reported_at"`
	Traffic
}

// Target is the version the sidecar id runs.
func (h *Head) Target(id string) uint64 {
	if h == nil {
		return 0
	}
	if st := h.Stage; st != nil && st.State == StageRunning && st.Selects(id) {
		return st.Version
	}
	return h.Version
}

// Running reports whether a staged publish is under way.
func (h *Head) Running() bool {
	return h != nil && h.Stage != nil && h.Stage.State == StageRunning
}

// Clone is a deep copy.
func (h *Head) Clone() *Head {
	if h == nil {
		return nil
	}
	cp := *h
	if h.Stage != nil {
		st := *h.Stage
		st.Sidecars = slices.Clone(st.Sidecars)
		st.Steps = slices.Clone(st.Steps)
		if st.Baseline != nil {
			st.Baseline = make(map[string]Traffic, len(h.Stage.Baseline))
			for k, v := range h.Stage.Baseline {
				st.Baseline[k] = v
			}
		}
		cp.Stage = &st
	}
	return &cp
}

// Selects reports whether the stage's share includes sidecar id.
func (st *Stage) Selects(id string) bool {
	return slices.Contains(st.Sidecars, id) || Bucket(id) < st.Percent
}

// Bucket places a sidecar id in [0, 100) by a stable hash (FNV-1a 64 of
// the id, in hundredths): a stage of p percent selects the ids below p,
// and widening it keeps every sidecar it already selected.
func Bucket(id string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return float64(h.Sum64()%10000) / 100
}

// Hash is the content hash of doc.
func Hash(doc *Doc) string {
	if doc == nil {
		doc = &Doc{}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Change is who makes an admin change and why, carried by a context to
// the store that records it.
type Change struct {
	Author, Message string
}

type changeKey struct{}

// WithChange returns ctx carrying c.
func WithChange(ctx context.Context, c Change) context.Context {
	return context.WithValue(ctx, changeKey{}, c)
}

// ChangeOf returns the Change ctx carries (zero when none).
func ChangeOf(ctx context.Context) Change {
	c, _ := ctx.Value(changeKey{}).(Change)
	return c
}

// RefusedError is a fleet operation refused in the group's present state
// (a staged publish running, an unknown version): not worth retrying.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// NewFleetStore returns the store of sidecar o.ID in group o.Group.
func NewFleetStore(client *api.Client, o FleetOptions) *FleetStore {
	o.Prefix = strings.Trim(o.Prefix, "/")
	if o.Keep < 1 {
		o.Keep = 1
	}
	if o.WatchWait <= 0 {
		o.WatchWait = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &FleetStore{client: client, o: o}
	s.draft = NewConsulStore(client, s.key(o.Group, "draft"))
	return s
}

// Group is the sidecar's group; ID its id.
func (s *FleetStore) Group() string { return s.o.Group }

// ID is the sidecar's id.
func (s *FleetStore) ID() string { return s.o.ID }

// LastHead is the last head of the sidecar's group this store read (nil
// before any).
func (s *FleetStore) LastHead() *Head { return s.head.Load().Clone() }

func (s *FleetStore) key(group string, parts ...string) string {
	return s.o.Prefix + "/" + group + "/" + strings.Join(parts, "/")
}

func (s *FleetStore) versionKey(group string, n uint64) string {
	return s.key(group, "versions", fmt.Sprintf("%020d", n))
}

// ReadHead reads a group's head consistently, with its ModifyIndex (0 and
// an empty head when the group has none).
func (s *FleetStore) ReadHead(ctx context.Context, group string) (*Head, uint64, error) {
	pair, _, err := s.client.KV().Get(s.key(group, "head"), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("fleet: reading group %q's head: %w", group, err)
	}
	h, err := decodeHead(pair, group)
	if err != nil {
		return nil, 0, err
	}
	if group == s.o.Group {
		s.head.Store(h.Clone())
	}
	return h, versionOf(pair), nil
}

func decodeHead(pair *api.KVPair, group string) (*Head, error) {
	h := &Head{}
	if pair == nil {
		return h, nil
	}
	if err := json.Unmarshal(pair.Value, h); err != nil {
		return nil, fmt.Errorf("fleet: group %q's head does not decode: %w", group, err)
	}
	return h, nil
}

// ReadVersion reads one version of a group, with its Doc.
func (s *FleetStore) ReadVersion(ctx context.Context, group string, n uint64) (*Version, error) {
	pair, _, err := s.client.KV().Get(s.versionKey(group, n), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("fleet: reading group %q's version %d: %w", group, n, err)
	}
	if pair == nil {
		return nil, refused("group %q has no version %d (never published, or older than the versions kept)", group, n)
	}
	v := &Version{}
	if err := json.Unmarshal(pair.Value, v); err != nil {
		return nil, fmt.Errorf("fleet: group %q's version %d does not decode: %w", group, n, err)
	}
	if v.Doc == nil {
		v.Doc = &Doc{}
	}
	return v, nil
}

// listGroup reads, consistently, the pairs under a group's folder what
// (versions, sidecars).
func (s *FleetStore) listGroup(ctx context.Context, group, what string) (api.KVPairs, error) {
	pairs, _, err := s.client.KV().List(s.key(group, what)+"/", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("fleet: listing group %q's %s: %w", group, what, err)
	}
	return pairs, nil
}

// Versions lists a group's kept versions, newest first, without their
// Docs.
func (s *FleetStore) Versions(ctx context.Context, group string) ([]Version, error) {
	pairs, err := s.listGroup(ctx, group, "versions")
	if err != nil {
		return nil, err
	}
	out := make([]Version, 0, len(pairs))
	for _, p := range pairs {
		var v Version
		if err := json.Unmarshal(p.Value, &v); err != nil {
			return nil, fmt.Errorf("fleet: %s does not decode: %w", p.Key, err)
		}
		v.Doc = nil
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Version) int { return cmpDesc(a.Number, b.Number) })
	return out, nil
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// maxPublishAttempts bounds a publish's retries against concurrent
// publishers.
const maxPublishAttempts = 32

// maxPrunes bounds the deletes one publish carries (Consul caps a
// transaction's operations).
const maxPrunes = 32

// Publication is one publish: the content, its record, and how it changes
// the head.
type Publication struct {
	Group   string
	Doc     *Doc
	Author  string
	Message string
	Source  string
	From    string
	// Stage, when set, publishes to its share first (Version, From,
	// State, StepSince and UpdatedAt are filled in); nil publishes to the
	// whole group.
	Stage *Stage
	// Check, when set, is called with the head the publish would build
	// on; an error refuses the publish (ErrConflict is returned as is).
	Check func(h *Head) error
}

// Publish writes p as the group's next version; see the type's contract.
func (s *FleetStore) Publish(ctx context.Context, p Publication) (Version, error) {
	if p.Group == "" {
		p.Group = s.o.Group
	}
	doc := p.Doc
	if doc == nil {
		doc = &Doc{}
	}
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		if attempt > 0 {
			if err := BackOff(ctx, attempt); err != nil {
				return Version{}, err
			}
		}
		h, idx, err := s.ReadHead(ctx, p.Group)
		if err != nil {
			return Version{}, err
		}
		if p.Check != nil {
			if err := p.Check(h); err != nil {
				return Version{}, err
			}
		}
		if p.Stage == nil && h.Running() {
			return Version{}, refused("a staged publish of version %d is running in group %q: widen it to 100%% or roll it back first", h.Stage.Version, p.Group)
		}
		now := s.o.Now()
		n := max(h.Latest, h.Version) + 1
		if idx == 0 {
			// No head (a new group, or its head was deleted): numbers go
			// on after the versions kept.
			top, err := s.topVersion(ctx, p.Group)
			if err != nil {
				return Version{}, err
			}
			n = max(n, top+1)
		}
		v := Version{Number: n, Hash: Hash(doc), Author: p.Author, Message: p.Message, CreatedAt: now.Unix(),
			Source: p.Source, From: p.From, Doc: doc}
		next := &Head{Version: n, Latest: n}
		if p.Stage != nil {
			st := *p.Stage
			st.Version, st.From, st.State, st.Reason = n, h.Version, StageRunning, ""
			st.StepSince, st.UpdatedAt = now.UnixMilli(), now.Unix()
			next = &Head{Version: h.Version, Latest: n, Stage: &st}
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return Version{}, fmt.Errorf("fleet: encoding version: %w", err)
		}
		hb, err := json.Marshal(next)
		if err != nil {
			return Version{}, fmt.Errorf("fleet: encoding head: %w", err)
		}
		ops := api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.key(p.Group, "head"), Value: hb, Index: idx}},
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.versionKey(p.Group, n), Value: vb, Index: 0}},
		}
		prunes, err := s.prunable(ctx, p.Group, n, next)
		if err != nil {
			return Version{}, err
		}
		for _, k := range prunes {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: k}})
		}
		ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return Version{}, fmt.Errorf("fleet: publishing version %d to group %q (outcome unknown): %w", n, p.Group, err)
		}
		if !ok {
			// Someone else took the head (or the number) first: retry on
			// the new head. Anything else is reported.
			_, now, gerr := s.ReadHead(ctx, p.Group)
			if gerr == nil && now != idx {
				continue
			}
			var why []string
			if resp != nil {
				for _, e := range resp.Errors {
					why = append(why, e.What)
				}
			}
			return Version{}, fmt.Errorf("fleet: publishing version %d to group %q: transaction rolled back: %s", n, p.Group, strings.Join(why, "; "))
		}
		if p.Group == s.o.Group {
			s.noteOwn(resp, next)
		}
		return v, nil
	}
	return Version{}, fmt.Errorf("fleet: publishing to group %q: still conflicting after %d attempts: %w", p.Group, maxPublishAttempts, ErrConflict)
}

// topVersion is the highest version number a group keeps (0: none).
func (s *FleetStore) topVersion(ctx context.Context, group string) (uint64, error) {
	keys, _, err := s.client.KV().Keys(s.key(group, "versions")+"/", "", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("fleet: listing group %q's versions: %w", group, err)
	}
	var top uint64
	for _, k := range keys {
		if n, err := strconv.ParseUint(k[strings.LastIndexByte(k, '/')+1:], 10, 64); err == nil {
			top = max(top, n)
		}
	}
	return top, nil
}

// prunable lists the version keys a publish of n makes too old.
func (s *FleetStore) prunable(ctx context.Context, group string, n uint64, next *Head) ([]string, error) {
	if n <= uint64(s.o.Keep) {
		return nil, nil
	}
	keys, _, err := s.client.KV().Keys(s.key(group, "versions")+"/", "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("fleet: listing group %q's versions: %w", group, err)
	}
	var out []string
	oldest := n - uint64(s.o.Keep) // versions ≤ oldest go
	for _, k := range keys {
		num, err := strconv.ParseUint(k[strings.LastIndexByte(k, '/')+1:], 10, 64)
		if err != nil || num > oldest || num == next.Version || next.Stage != nil && num == next.Stage.From {
			continue
		}
		out = append(out, k)
		if len(out) == maxPrunes {
			break
		}
	}
	return out, nil
}

// UpdateHead changes the group's head with check-and-set: fn edits a copy
// (returning an error leaves it alone); a concurrent change makes fn run
// again on the new head.
func (s *FleetStore) UpdateHead(ctx context.Context, group string, fn func(h *Head) error) (*Head, error) {
	if group == "" {
		group = s.o.Group
	}
	for attempt := range maxPublishAttempts {
		if attempt > 0 {
			if err := BackOff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		h, idx, err := s.ReadHead(ctx, group)
		if err != nil {
			return nil, err
		}
		if err := fn(h); err != nil {
			return nil, err
		}
		b, err := json.Marshal(h)
		if err != nil {
			return nil, err
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.key(group, "head"), Value: b, Index: idx}}}
		ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("fleet: writing group %q's head (outcome unknown): %w", group, err)
		}
		if ok {
			if group == s.o.Group {
				s.noteOwn(resp, h)
			}
			return h, nil
		}
	}
	return nil, fmt.Errorf("fleet: group %q's head: still conflicting after %d attempts: %w", group, maxPublishAttempts, ErrConflict)
}

// noteOwn records the head this store just wrote and its ModifyIndex, so
// Watch does not report an older head read before the write.
func (s *FleetStore) noteOwn(resp *api.TxnResponse, h *Head) {
	s.head.Store(h.Clone())
	if resp == nil {
		return
	}
	for _, r := range resp.Results {
		if r != nil && r.KV != nil && r.KV.Key == s.key(s.o.Group, "head") {
			for {
				cur := s.ownIdx.Load()
				if r.KV.ModifyIndex <= cur || s.ownIdx.CompareAndSwap(cur, r.KV.ModifyIndex) {
					break
				}
			}
		}
	}
}

// LoadDraft returns the group's draft and its revision (the draft key's
// ModifyIndex); without a draft, a copy of the stable version's content
// and revision 0.
func (s *FleetStore) LoadDraft(ctx context.Context) (*Doc, uint64, error) {
	doc, rev, err := s.draft.Load(ctx)
	if err != nil || rev != 0 {
		return doc, rev, err
	}
	h, _, err := s.ReadHead(ctx, s.o.Group)
	if err != nil {
		return nil, 0, err
	}
	if h.Version == 0 {
		return &Doc{}, 0, nil
	}
	v, err := s.ReadVersion(ctx, s.o.Group, h.Version)
	if err != nil {
		return nil, 0, err
	}
	return v.Doc, 0, nil
}

// SaveDraft writes the draft if its revision is still prev (0: create
// only); ErrConflict otherwise.
func (s *FleetStore) SaveDraft(ctx context.Context, doc *Doc, prev uint64) (uint64, error) {
	return s.draft.Save(ctx, doc, prev)
}

// Load implements Store: the version this sidecar should run.
func (s *FleetStore) Load(ctx context.Context) (*Doc, uint64, error) {
	h, _, err := s.ReadHead(ctx, s.o.Group)
	if err != nil {
		return nil, 0, err
	}
	return s.docOf(ctx, h.Target(s.o.ID))
}

func (s *FleetStore) docOf(ctx context.Context, n uint64) (*Doc, uint64, error) {
	if n == 0 {
		return &Doc{}, 0, nil
	}
	v, err := s.ReadVersion(ctx, s.o.Group, n)
	if err != nil {
		return nil, 0, err
	}
	return v.Doc, n, nil
}

// Save implements Store: doc published as a new version of the group
// (source "admin", author and message from ctx's Change), if this
// sidecar's target is still prev (0: the group has no head yet) and no
// stage runs.
func (s *FleetStore) Save(ctx context.Context, doc *Doc, prev uint64) (uint64, error) {
	c := ChangeOf(ctx)
	v, err := s.Publish(ctx, Publication{Doc: doc, Author: c.Author, Message: c.Message, Source: "admin",
		Check: func(h *Head) error {
			if h.Running() {
				return refused("a staged publish of version %d is running in group %q: widen it to 100%% or roll it back before changing the admin layer", h.Stage.Version, s.o.Group)
			}
			if h.Target(s.o.ID) != prev {
				return ErrConflict
			}
			return nil
		}})
	if err != nil {
		return 0, err
	}
	return v.Number, nil
}

// Watch implements Store: fn is called with the version this sidecar
// should run each time it changes (the first call reports the state found
// when Watch starts). A group without a head reports version 0. Errors go
// to OnError and are retried with backoff.
func (s *FleetStore) Watch(ctx context.Context, fn func(*Doc, uint64)) {
	var (
		waitIdx  uint64
		reported uint64
		have     bool
		failures int
	)
	key := s.key(s.o.Group, "head")
	fail := func(err error) bool {
		if s.o.OnError != nil {
			s.o.OnError(err)
		}
		failures++
		waitIdx = 0
		return discovery.Sleep(ctx, discovery.Backoff(failures, 100*time.Millisecond, 5*time.Second, discovery.FullJitter))
	}
	for ctx.Err() == nil {
		start := time.Now()
		pair, meta, err := s.client.KV().Get(key, (&api.QueryOptions{WaitIndex: waitIdx, WaitTime: s.o.WatchWait}).WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil || !fail(fmt.Errorf("fleet: watching group %q's head: %w", s.o.Group, err)) {
				return
			}
			continue
		}
		next := consul.NextIndex(waitIdx, meta.LastIndex)
		early := waitIdx != 0 && meta.LastIndex == waitIdx && time.Since(start) < s.o.WatchWait/2
		waitIdx = next
		if own := s.ownIdx.Load(); versionOf(pair) < own {
			// Read before this store's own write of the head (which the
			// caller already holds), or Consul lost its data: tell by a
			// consistent read.
			fresh, _, err := s.client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
			if err != nil {
				if ctx.Err() != nil || !fail(fmt.Errorf("fleet: reading group %q's head: %w", s.o.Group, err)) {
					return
				}
				continue
			}
			if versionOf(fresh) < own {
				s.ownIdx.CompareAndSwap(own, 0)
			}
			pair = fresh
		}
		h, err := decodeHead(pair, s.o.Group)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		s.head.Store(h.Clone())
		target := h.Target(s.o.ID)
		if !have || target != reported {
			doc, v, err := s.docOf(ctx, target)
			if err != nil {
				if ctx.Err() != nil || !fail(err) {
					return
				}
				continue
			}
			fn(doc, v)
			reported, have = target, true
		}
		failures = 0
		if early && !discovery.Sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// Sidecars lists the reports of a group's live sidecars, by id.
func (s *FleetStore) Sidecars(ctx context.Context, group string) ([]Report, error) {
	pairs, err := s.listGroup(ctx, group, "sidecars")
	if err != nil {
		return nil, err
	}
	out := make([]Report, 0, len(pairs))
	for _, p := range pairs {
		var r Report
		if err := json.Unmarshal(p.Value, &r); err != nil || p.Session == "" {
			continue // a foreign or dead entry
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Reporter keeps this sidecar's report in its group's sidecars/ folder,
// bound to a Consul session: the key is deleted when the session ends
// (Close, or the TTL expiring after the sidecar died).
type Reporter struct {
	s   *FleetStore
	ttl time.Duration
	// session is owned by the goroutine calling Report and Close.
	session string
}

// NewReporter returns a reporter whose session lives ttl without renewal
// (Consul's minimum is 10s).
func (s *FleetStore) NewReporter(ttl time.Duration) *Reporter {
	return &Reporter{s: s, ttl: max(ttl, 10*time.Second)}
}

func (r *Reporter) sessionName() string { return "outrigger-fleet " + r.s.o.Group + "/" + r.s.o.ID }

// Report writes rep (renewing the session, or creating one). It is not
// safe for concurrent use.
func (r *Reporter) Report(ctx context.Context, rep Report) error {
	sess := r.s.client.Session()
	if r.session != "" {
		e, _, err := sess.Renew(r.session, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("fleet: renewing the report session: %w", err)
		}
		if e == nil {
			r.session = "" // expired (the agent lost it): a new one
		}
	}
	if r.session == "" {
		id, _, err := sess.Create(&api.SessionEntry{Name: r.sessionName(), TTL: r.ttl.String(),
			Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond}, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("fleet: creating the report session: %w", err)
		}
		r.session = id
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	key := r.s.key(r.s.o.Group, "sidecars", r.s.o.ID)
	ok, _, err := r.s.client.KV().Acquire(&api.KVPair{Key: key, Value: b, Session: r.session}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("fleet: writing the report: %w", err)
	}
	if ok {
		return nil
	}
	// Held by another session: this sidecar's previous life (killed
	// before its session expired) is ended; anything else is a clash of
	// ids.
	pair, _, err := r.s.client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("fleet: reading the report key: %w", err)
	}
	if pair != nil && pair.Session != "" {
		e, _, err := sess.Info(pair.Session, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("fleet: reading the report key's session: %w", err)
		}
		if e != nil && e.Name != r.sessionName() {
			return fmt.Errorf("fleet: another sidecar (session %q) reports under id %q", e.Name, r.s.o.ID)
		}
		if e != nil {
			if _, err := sess.Destroy(pair.Session, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				return fmt.Errorf("fleet: ending the previous report session: %w", err)
			}
		}
	}
	// The ended session's lock delay (1ms) may still hold the key.
	for attempt := 1; attempt <= 10; attempt++ {
		if ok, _, err = r.s.client.KV().Acquire(&api.KVPair{Key: key, Value: b, Session: r.session}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			return fmt.Errorf("fleet: writing the report: %w", err)
		} else if ok {
			return nil
		}
		if !discovery.Sleep(ctx, time.Duration(attempt)*10*time.Millisecond) {
			return ctx.Err()
		}
	}
	return errors.New("fleet: the report key is held by another session")
}

// Close ends the session, which deletes the report.
func (r *Reporter) Close(ctx context.Context) error {
	if r.session == "" {
		return nil
	}
	_, err := r.s.client.Session().Destroy(r.session, (&api.WriteOptions{}).WithContext(ctx))
	r.session = ""
	return err
}
