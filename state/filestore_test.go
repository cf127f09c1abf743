package state_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// healthchecksOf reads healthchecks from their JSON.
func healthchecksOf(text string) *config.Healthchecks {
	h := &config.Healthchecks{}
	if err := json.Unmarshal([]byte(text), h); err != nil {
		panic(err)
	}
	return h
}

// sampleDoc uses every kind of field, so a round trip covers them all.
func sampleDoc() *state.Doc {
	w := 7
	share := 12.5
	return &state.Doc{
		Upstreams: map[string]*config.Upstream{
			"api": {
				Meta:      state.Meta{ID: "u1", CreatedAt: 1, UpdatedAt: 2},
				Name:      "api",
				Algorithm: "consistent-hashing",
				HashOn:    "header", HashOnHeader: "X-User",
				Slots: 1000,
				// The healthchecks as the admin layer has always stored them.
				Healthchecks: healthchecksOf(`{"threshold":25,"active":{"type":"http","http_path":"/health","timeout":1.5,"concurrency":4,
					"https_verify_certificate":false,"headers":{"X-Check":["a","b"]},"healthy":{"interval":5,"successes":2,"http_statuses":[200,302]},
					"unhealthy":{"interval":1,"http_failures":3,"tcp_failures":2,"timeouts":2}},"passive":{"type":"http","unhealthy":{"http_failures":5}}}`),
				Targets: []config.Target{{Meta: state.Meta{ID: "t1"}, Target: "10.0.0.1:80", Weight: 100, Tags: []string{"canary"}}},
			},
			"old": {Meta: state.Meta{ID: "u2", Deleted: true}, Name: "old"},
		},
		Services: map[string]*state.Service{
			"svc": {Meta: state.Meta{ID: "s1"}, Name: "svc", Protocol: "http", Host: "api", Port: 80, Path: "/v1",
				Retries: 3, ConnectTimeout: config.Millis(time.Second), ReadTimeout: config.Millis(2 * time.Second), WriteTimeout: config.Millis(3 * time.Second)},
		},
		Routes: map[string]*state.Route{
			"r": {Meta: state.Meta{ID: "r1"}, Name: "r", Service: "svc", Paths: []string{"/a", "/b"}, Hosts: []string{"x.test"},
				Methods: []string{"GET"}, Headers: map[string][]string{"X-A": {"1"}}, StripPath: true, RegexPriority: 3, PathHandling: "v1"},
		},
		Overrides: []state.Override{
			{ID: "o1", Upstream: "api", Target: "10.0.0.1:80", Weight: &w, CreatedAt: 5},
			{ID: "o2", Upstream: "api", Tags: []string{"canary"}, Meta: map[string]string{"v": "2"}, Share: &share, CreatedAt: 6},
		},
		Canaries: map[string]*state.Canary{
			"svc": {Upstream: "api-canary", Percent: 2.5, StickyBy: "header:X-User", UpdatedAt: 9,
				Force: []state.ForceRule{{Kind: "header", Name: "X-Canary", Value: "1"}}},
		},
		Rollouts: map[string]*state.Rollout{
			"svc": {Steps: []float64{1, 5, 25, 100}, Interval: state.Duration(90 * time.Second), MaxErrorRateIncrease: 0.01,
				MaxP99Ratio: 1.5, MinRequests: 100, State: state.RolloutRunning, Step: 1, StepSince: 123, UpdatedAt: 124},
		},
		Marks: map[string]map[string]string{"api": {"10.0.0.1:80": "unhealthy"}},
	}
}

// rmwUpdate is the gateway's read-modify-write loop: load, change, save on
// the loaded version, and start over on ErrConflict. It returns the new
// version and the number of attempts.
func rmwUpdate(ctx context.Context, st state.Store, change func(*state.Doc)) (uint64, int, error) {
	const maxAttempts = 200
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		doc, v, err := st.Load(ctx)
		if err != nil {
			return 0, attempt, err
		}
		change(doc)
		nv, err := st.Save(ctx, doc, v)
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		return nv, attempt, err
	}
	return 0, maxAttempts, fmt.Errorf("still conflicting after %d attempts", maxAttempts)
}

// addRoute returns a change adding a route of that name.
func addRoute(name string) func(*state.Doc) {
	return func(d *state.Doc) {
		if d.Routes == nil {
			d.Routes = map[string]*state.Route{}
		}
		d.Routes[name] = &state.Route{Name: name, Service: "svc", Paths: []string{"/" + name}}
	}
}

func routeNames(d *state.Doc) []string {
	var names []string
	for n := range d.Routes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkConcurrentRMW runs writers goroutines, each adding perWriter routes
// through its own store from stores (round robin), and checks that every
// route is present at the end.
func checkConcurrentRMW(t *testing.T, stores []state.Store, writers, perWriter int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%len(stores)]
			for i := range perWriter {
				_, attempts, err := rmwUpdate(ctx, st, addRoute(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					errs <- fmt.Errorf("writer %d, update %d: %w", w, i, err)
					return
				}
				conflicts.Add(int64(attempts - 1))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	doc, v, err := stores[0].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for w := range writers {
		for i := range perWriter {
			want = append(want, fmt.Sprintf("w%d-%d", w, i))
		}
	}
	slices.Sort(want)
	if got := routeNames(doc); !slices.Equal(got, want) {
		t.Errorf("routes at version %d = %v\nwant %v", v, got, want)
	}
	t.Logf("%d writers x %d updates: %d conflicts retried, final version %d", writers, perWriter, conflicts.Load(), v)
}

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	st := state.NewFileStore(path)
	if st.Path() != path {
		t.Errorf("Path() = %q", st.Path())
	}
	doc, v, err := st.Load(ctx)
	if err != nil || v != 0 || !reflect.DeepEqual(doc, &state.Doc{}) {
		t.Fatalf("Load of a missing file = %+v, %d, %v; want empty, 0, nil", doc, v, err)
	}
	want := sampleDoc()
	v1, err := st.Save(ctx, want, 0)
	if err != nil || v1 != 1 {
		t.Fatalf("Save = %d, %v; want 1", v1, err)
	}
	got, v, err := state.NewFileStore(path).Load(ctx)
	if err != nil || v != 1 {
		t.Fatalf("Load = %d, %v", v, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	v2, err := st.Save(ctx, &state.Doc{}, v1)
	if err != nil || v2 != 2 {
		t.Fatalf("second Save = %d, %v; want 2", v2, err)
	}
	if got, v, err := st.Load(ctx); err != nil || v != 2 || !reflect.DeepEqual(got, &state.Doc{}) {
		t.Errorf("Load after emptying = %+v, %d, %v", got, v, err)
	}
	// The file is the documented envelope.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"version": 2`)) || !bytes.Contains(b, []byte(`"doc": {}`)) {
		t.Errorf("file content = %s", b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
	// A replaced file keeps its mode.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Save(ctx, want, v2); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after Save = %v, %v; want 0640 kept", fi.Mode(), err)
	}
	// Watch has nothing to watch and returns at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Watch(context.Background(), func(*state.Doc, uint64) { t.Error("Watch called fn") })
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
	}
}

func TestFileStoreConflict(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	a, b := state.NewFileStore(path), state.NewFileStore(path)

	if _, err := a.Save(ctx, &state.Doc{}, 3); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Save(prev 3) on a missing file = %v; want ErrConflict", err)
	}
	if _, err := a.Save(ctx, &state.Doc{}, 0); err != nil {
		t.Fatal(err)
	}
	// Both read version 1; a wins; b (another store: an external change
	// as far as it knows) gets ErrConflict, then retries on version 2.
	da, va, _ := a.Load(ctx)
	db, vb, _ := b.Load(ctx)
	if va != 1 || vb != 1 {
		t.Fatalf("versions %d, %d; want 1, 1", va, vb)
	}
	addRoute("from-a")(da)
	if v, err := a.Save(ctx, da, va); err != nil || v != 2 {
		t.Fatalf("a.Save = %d, %v", v, err)
	}
	addRoute("from-b")(db)
	if _, err := b.Save(ctx, db, vb); err != state.ErrConflict {
		t.Fatalf("b.Save on a stale version = %v; want ErrConflict", err)
	}
	if _, err := a.Save(ctx, da, va); err != state.ErrConflict {
		t.Fatalf("a.Save on its own stale version = %v; want ErrConflict", err)
	}
	v, attempts, err := rmwUpdate(ctx, b, addRoute("from-b"))
	if err != nil || v != 3 || attempts != 1 {
		t.Fatalf("b retry = %d after %d attempts, %v", v, attempts, err)
	}
	doc, _, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := routeNames(doc); !slices.Equal(got, []string{"from-a", "from-b"}) {
		t.Errorf("routes = %v; want both changes", got)
	}

	// Concurrent writers of one process, sharing its store.
	checkConcurrentRMW(t, []state.Store{state.NewFileStore(filepath.Join(t.TempDir(), "state.json"))}, 6, 8)
}

func TestFileStoreCorruptFile(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"truncated":  `{"version": 3, "doc": {"routes": {`,
		"empty":      ``,
		"no version": `{"doc": {}}`,
		"no doc":     `{"version": 3}`,
		"doc null":   `{"version": 3, "doc": null}`,
		"bad doc":    `{"version": 3, "doc": {"routes": []}}`,
		"garbage":    "\x00\x00\x00",
		"trailing":   `{"version": 3, "doc": {}} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			st := state.NewFileStore(path)
			doc, _, err := st.Load(ctx)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("Load = %+v, %v; want an error naming %s", doc, err, path)
			}
			t.Logf("Load: %v", err)
			if name != "bad doc" { // Save checks the envelope only
				for _, prev := range []uint64{0, 3} {
					if _, err := st.Save(ctx, sampleDoc(), prev); err == nil || !strings.Contains(err.Error(), path) || errors.Is(err, state.ErrConflict) {
						t.Errorf("Save(prev %d) over a corrupt file = %v; want an error naming the path", prev, err)
					}
				}
				if b, _ := os.ReadFile(path); string(b) != content {
					t.Errorf("the corrupt file was overwritten: %q", b)
				}
			}
		})
	}
}

func TestFileStoreMissingDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "no", "such", "dir")
	path := filepath.Join(dir, "state.json")
	st := state.NewFileStore(path)
	if _, _, err := st.Load(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load = %v; want an error naming %s", err, path)
	} else {
		t.Logf("Load: %v", err)
	}
	if _, err := st.Save(ctx, sampleDoc(), 0); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Save = %v; want an error naming %s", err, path)
	} else {
		t.Logf("Save: %v", err)
	}
	// A regular file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st = state.NewFileStore(filepath.Join(file, "state.json"))
	if _, _, err := st.Load(ctx); err == nil {
		t.Error("Load under a regular file succeeded")
	}
	if _, err := st.Save(ctx, sampleDoc(), 0); err == nil {
		t.Error("Save under a regular file succeeded")
	}
	// A canceled context stops both before any I/O.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ok := state.NewFileStore(filepath.Join(t.TempDir(), "state.json"))
	if _, _, err := ok.Load(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context = %v", err)
	}
	if _, err := ok.Save(cctx, sampleDoc(), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a canceled context = %v", err)
	}
}

func TestFileStoreNoTempFilesLeft(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	// Leftovers of a crashed writer, and a file of someone else.
	for _, name := range []string{".state.json.tmp-123", ".state.json.tmp-456", "other.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := state.NewFileStore(path)
	var v uint64
	for i := range 5 {
		var err error
		if v, err = st.Save(ctx, &state.Doc{Marks: map[string]map[string]string{"u": {"i": strconv.Itoa(i)}}}, v); err != nil {
			t.Fatal(err)
		}
	}
	// Failed saves leave nothing either.
	if _, err := st.Save(ctx, sampleDoc(), 1); err != state.ErrConflict {
		t.Fatalf("stale Save = %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"other.json", "state.json"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v; want %v", names, want)
	}
}

func TestFileStoreSaveLatency(t *testing.T) {
	ctx := context.Background()
	st := state.NewFileStore(filepath.Join(t.TempDir(), "state.json"))
	doc := sampleDoc()
	const n = 40
	lat := make([]time.Duration, 0, n)
	var v uint64
	for range n {
		start := time.Now()
		var err error
		if v, err = st.Save(ctx, doc, v); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("fsync'd Save of a %d-byte file, %d saves: min %v, median %v, p90 %v, max %v",
		fileSize(t, st.Path()), n, lat[0], lat[n/2], lat[n*9/10], lat[n-1])
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// crashHelperEnv names the state file of TestFileStoreCrashHelper.
const crashHelperEnv = "OUTRIGGER_STATE_CRASH_HELPER_FILE"

// crashDoc is the Doc the crash helper saves as version v: about 64 KB,
// so a write spans many pages, and every part of it names v.
func crashDoc(v uint64) *state.Doc {
	d := &state.Doc{Routes: map[string]*state.Route{}, Marks: map[string]map[string]string{"crash": {"version": strconv.FormatUint(v, 10)}}}
	pad := strings.Repeat("p", 1000)
	for i := range 60 {
		name := fmt.Sprintf("r%03d", i)
		d.Routes[name] = &state.Route{Name: name, Service: fmt.Sprintf("v%d-%s", v, pad), Paths: []string{fmt.Sprintf("/v%d", v)}}
	}
	return d
}

// checkCrashDoc reports whether d is exactly crashDoc(v).
func checkCrashDoc(d *state.Doc, v uint64) error {
	if v == 0 {
		if !reflect.DeepEqual(d, &state.Doc{}) {
			return errors.New("version 0 with a non-empty doc")
		}
		return nil
	}
	if !reflect.DeepEqual(d, crashDoc(v)) {
		return fmt.Errorf("the doc of version %d is not the one saved as version %d (marks %v)", v, v, d.Marks)
	}
	return nil
}

// TestFileStoreCrashHelper is not a test: TestFileStoreKill9 runs the test
// binary with only this test and crashHelperEnv set. It saves versions in a
// loop and prints "ack N" after each acknowledged Save, until killed (or
// after 15s, should its parent die).
func TestFileStoreCrashHelper(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("helper process of TestFileStoreKill9")
	}
	ctx := context.Background()
	st := state.NewFileStore(path)
	doc, v, err := st.Load(ctx)
	if err == nil {
		err = checkCrashDoc(doc, v)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
		nv, err := st.Save(ctx, crashDoc(v+1), v)
		if err != nil || nv != v+1 {
			fmt.Fprintf(os.Stderr, "save on %d = %d, %v\n", v, nv, err)
			os.Exit(3)
		}
		// os.Stdout is unbuffered: the line is in the pipe once Printf
		// returns, and a SIGKILL cannot take it back.
		fmt.Printf("ack %d\n", nv)
		v = nv
	}
	os.Exit(4)
}

// TestFileStoreKill9 kills a process that saves in a loop at random points
// and checks that the file always loads, with a version at least the last
// acknowledged one (and at most one more: the Save in flight).
func TestFileStoreKill9(t *testing.T) {
	const (
		rounds   = 30
		seed     = 20240611
		maxDelay = 80 * time.Millisecond
	)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now()
	var lastAck uint64
	var inFlightLanded, midWrite, totalAcks int
	for round := range rounds {
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		acked, err := runAndKill(t, path, delay)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		totalAcks += len(acked)
		for _, a := range acked {
			if a <= lastAck {
				t.Fatalf("round %d: acknowledged version %d after %d", round, a, lastAck)
			}
			lastAck = a
		}
		if countTemps(t, dir) > 0 {
			midWrite++ // killed between creating the temp file and the rename
		}
		doc, v, err := state.NewFileStore(path).Load(ctx)
		if err != nil {
			t.Fatalf("round %d: after kill -9, Load: %v", round, err)
		}
		if err := checkCrashDoc(doc, v); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if v < lastAck || v > lastAck+1 {
			t.Fatalf("round %d: loaded version %d, last acknowledged %d", round, v, lastAck)
		}
		if v == lastAck+1 {
			inFlightLanded++
			lastAck = v // the next helper starts from it
		}
	}
	t.Logf("%d kills (seed %d, delays up to %v after the first ack) in %v: %d acknowledged saves, last version %d; %d kills left a temp file (mid-write), %d landed after a rename but before its ack",
		rounds, seed, maxDelay, time.Since(start).Round(time.Millisecond), totalAcks, lastAck, midWrite, inFlightLanded)
	if totalAcks < rounds {
		t.Errorf("only %d saves acknowledged in %d rounds: the kills did not land amid saves", totalAcks, rounds)
	}
	// The next Save sweeps what the crashes left.
	if _, err := state.NewFileStore(path).Save(ctx, crashDoc(lastAck+1), lastAck); err != nil {
		t.Fatal(err)
	}
	if n := countTemps(t, dir); n != 0 {
		t.Errorf("%d temp files left after a Save", n)
	}
}

// runAndKill starts the crash helper, waits for its first acknowledged
// Save, kills it with SIGKILL after delay, and returns the versions it
// acknowledged.
func runAndKill(t *testing.T, path string, delay time.Duration) ([]uint64, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	first := make(chan struct{})
	done := make(chan struct{})
	var acked []uint64
	var junk []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			n, err := strconv.ParseUint(strings.TrimPrefix(line, "ack "), 10, 64)
			if !strings.HasPrefix(line, "ack ") || err != nil {
				junk = append(junk, line)
				continue
			}
			if len(acked) == 0 {
				close(first)
			}
			acked = append(acked, n)
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-first:
		timer := time.NewTimer(delay)
		<-timer.C
	case <-done:
	case <-timeout.C:
	}
	_ = cmd.Process.Kill()
	<-done // the pipe closes when the process is gone
	werr := cmd.Wait()
	if len(acked) == 0 {
		return nil, fmt.Errorf("the helper acknowledged nothing (%v); stdout %q, stderr %q", werr, junk, stderr.String())
	}
	if stderr.Len() > 0 || len(junk) > 0 {
		return nil, fmt.Errorf("helper failed (%v): stdout %q, stderr %q", werr, junk, stderr.String())
	}
	return acked, nil
}

func countTemps(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".state.json.tmp-") {
			n++
		}
	}
	return n
}
