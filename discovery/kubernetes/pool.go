package kubernetes

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/outrigger-gw/outrigger/discovery"
)

// Pool shares API clients and EndpointSlice informers between Sources: one
// client per set of credentials, one informer per (credentials, namespace,
// service, label selector), reference-counted (started by the first Run
// that needs it, stopped when the last one returns). The zero Pool is not
// usable; make one with NewPool. Safe for concurrent use.
type Pool struct {
	opts options // set by NewPool, never changed

	// mu guards clients and watches.
	mu      sync.Mutex
	clients map[credentials]*clientEntry
	watches map[watchKey]*sharedWatch

	// lists and watches count successful requests (Stats).
	nLists, nWatches atomic.Int64
}

type clientEntry struct {
	c    *client
	refs int
}

// watchKey identifies one informer.
type watchKey struct {
	cred      credentials
	namespace string // "" until resolved: the credentials' default
	service   string
	selector  string
}

// NewPool returns an empty Pool.
func NewPool(opts ...Option) *Pool {
	return &Pool{opts: buildOptions(opts), clients: map[credentials]*clientEntry{}, watches: map[watchKey]*sharedWatch{}}
}

// Stats counts what a Pool's informers asked the API server.
type Stats struct {
	// Informers is the number of running informers.
	Informers int
	// Lists and Watches count the requests that succeeded, over every
	// informer the Pool has run.
	Lists, Watches int64
}

// Stats reports the Pool's informers and requests.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Informers: len(p.watches), Lists: p.nLists.Load(), Watches: p.nWatches.Load()}
}

// acquire returns the running informer for k, starting it if needed.
func (p *Pool) acquire(k watchKey) (*sharedWatch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ce := p.clients[k.cred]
	if ce == nil {
		c, err := p.opts.newClient(k.cred)
		if err != nil {
			return nil, err
		}
		ce = &clientEntry{c: c}
		p.clients[k.cred] = ce
	}
	if k.namespace == "" {
		k.namespace = ce.c.namespace
	}
	w := p.watches[k]
	if w == nil {
		ce.refs++
		w = p.startWatch(ce.c, k)
		p.watches[k] = w
	}
	w.refs++
	return w, nil
}

// release drops a reference to w, stopping it (and its client, when no
// other informer uses it) with the last one.
func (p *Pool) release(w *sharedWatch) {
	p.mu.Lock()
	w.refs--
	last := w.refs == 0
	if last {
		delete(p.watches, w.key)
		if ce := p.clients[w.key.cred]; ce != nil {
			if ce.refs--; ce.refs == 0 {
				delete(p.clients, w.key.cred)
			}
		}
	}
	p.mu.Unlock()
	if last {
		w.cancel()
		<-w.done
	}
}

// sharedWatch is one running informer and what its Sources need to know
// about it.
//
// Concurrency: key, informer, cancel and done are set by startWatch and
// never change; refs is the Pool's; mu guards the rest.
type sharedWatch struct {
	key      watchKey
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	done     chan struct{}
	// refs is guarded by the Pool's mu.
	refs int

	// mu guards subs, err, errSeq and synced. subs maps each subscriber's
	// wake-up channel to the arrival of the earliest event it has not
	// taken yet (zero when none is pending).
	mu   sync.Mutex
	subs map[chan struct{}]time.Time
	// err is the last failure to list or watch, nil once a list or watch
	// succeeded after it; errSeq counts failures.
	err    error
	errSeq uint64
	synced bool
}

// listWatch lists and watches one service's EndpointSlices and tells the
// shared watch how each request went.
type listWatch struct {
	w       *sharedWatch
	c       *client
	p       *Pool
	ns      string
	sel     string
	timeout time.Duration
}

// IsWatchListSemanticsUnSupported makes the reflector list, then watch
// (streaming lists bring nothing to sets of a few objects, and a list is
// what every API server version serves).
func (lw *listWatch) IsWatchListSemanticsUnSupported() bool { return true }

func (lw *listWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

func (lw *listWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

func (lw *listWatch) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	opts.LabelSelector = lw.sel
	var l *endpointSliceList
	err := lw.retry(ctx, "list", func() (err error) {
		l, err = lw.c.list(ctx, lw.ns, opts, lw.timeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	lw.p.nLists.Add(1)
	return l, nil
}

func (lw *listWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	// The reflector sets opts.TimeoutSeconds (5-10 minutes) and resumes
	// from the last resourceVersion it saw when the server ends the watch.
	opts.LabelSelector = lw.sel
	if d := lw.p.opts.watchTimeout; d > 0 {
		secs := int64(d / time.Second)
		opts.TimeoutSeconds = &secs
	}
	var wi watch.Interface
	err := lw.retry(ctx, "watch", func() (err error) {
		wi, err = lw.c.watch(ctx, lw.ns, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	lw.p.nWatches.Add(1)
	return wi, nil
}

// retry runs a request until it succeeds, fails for a reason retrying
// does not cure (a denial, a bad request: returned to the reflector, which
// backs off on its own), or ctx ends. An unreachable or overloaded API
// server is retried here, with the Pool's backoff (full jitter, 100ms
// doubling to 5s by default), so a watch resumes within a few seconds of
// the API server's return instead of client-go's 30s.
func (lw *listWatch) retry(ctx context.Context, verb string, do func() error) error {
	for attempt := 1; ; attempt++ {
		err := do()
		if err == nil {
			lw.w.ok()
			return nil
		}
		lw.w.fail(ctx, explain(verb, lw.ns, err))
		if !transient(err) {
			return err
		}
		d := max(discovery.Backoff(attempt, lw.p.opts.backoffMin, lw.p.opts.backoffMax, discovery.FullJitter), time.Millisecond)
		if !discovery.Sleep(ctx, d) {
			return err
		}
	}
}

// transient reports whether err is worth retrying at once: no answer from
// the API server, or an answer saying it is busy or failing.
func transient(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return true
	}
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}

// startWatch starts the informer of k; the caller holds p.mu.
func (p *Pool) startWatch(c *client, k watchKey) *sharedWatch {
	sel := labels.Set{labelServiceName: k.service}.AsSelector().String()
	if k.selector != "" {
		sel += "," + k.selector
	}
	w := &sharedWatch{key: k, done: make(chan struct{}), subs: map[chan struct{}]time.Time{}}
	lw := &listWatch{w: w, c: c, p: p, ns: k.namespace, sel: sel, timeout: p.opts.requestTimeout}
	w.informer = cache.NewSharedIndexInformerWithOptions(lw, &endpointSlice{}, cache.SharedIndexInformerOptions{})
	// Errors are reported through the Sources' updates, not logged here.
	_ = w.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// The watch ended; the reflector watches again.
		case apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			// 410: the resourceVersion is too old; the reflector lists
			// again.
		default:
			w.failUnlessReported(ctx, explain("watch", k.namespace, err))
		}
	})
	reg, _ := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.notify() },
		UpdateFunc: func(any, any) { w.notify() },
		DeleteFunc: func(any) { w.notify() },
	})
	// client-go logs through klog; this informer's logger is discarded
	// (every failure reaches the Sources' updates instead).
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logr.Discard()))
	w.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.informer.RunWithContext(ctx)
	}()
	go func() {
		defer wg.Done()
		select {
		case <-reg.HasSyncedChecker().Done():
			w.mu.Lock()
			w.synced = true
			w.mu.Unlock()
			w.notify()
		case <-ctx.Done():
		}
	}()
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// fail records a failure to list or watch. Failures with the message of
// the one already recorded are not counted again: Sources report each
// distinct failure once until a request succeeds.
func (w *sharedWatch) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	w.mu.Lock()
	same := w.err != nil && w.err.Error() == err.Error()
	if !same {
		w.err = err
		w.errSeq++
	}
	w.mu.Unlock()
	if !same {
		w.notify()
	}
}

// failUnlessReported records a failure the reflector reports, unless the
// request that failed already did (the list and watch wrappers see every
// failed request first; the reflector reports some of them again).
func (w *sharedWatch) failUnlessReported(ctx context.Context, err error) {
	w.mu.Lock()
	reported := w.err != nil
	w.mu.Unlock()
	if !reported {
		w.fail(ctx, err)
	}
}

// ok records a list or watch that succeeded.
func (w *sharedWatch) ok() {
	w.mu.Lock()
	was := w.err
	w.err = nil
	w.mu.Unlock()
	if was != nil {
		w.notify()
	}
}

// status is the informer's state: its last failure (nil when the last
// request succeeded), that failure's number, and whether the first list
// has been delivered.
func (w *sharedWatch) status() (err error, seq uint64, synced bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err, w.errSeq, w.synced
}

// notify wakes every subscriber (without blocking: one pending wake-up
// per subscriber is enough, as each reads the whole state).
func (w *sharedWatch) notify() {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch, since := range w.subs {
		if since.IsZero() {
			w.subs[ch] = now
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *sharedWatch) subscribe() chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = time.Time{}
	w.mu.Unlock()
	return ch
}

// take returns when the earliest event ch has not taken yet arrived (zero
// when none is pending) and marks every event so far as taken.
func (w *sharedWatch) take(ch chan struct{}) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.subs[ch]
	if _, ok := w.subs[ch]; ok {
		w.subs[ch] = time.Time{}
	}
	return t
}

func (w *sharedWatch) unsubscribe(ch chan struct{}) {
	w.mu.Lock()
	delete(w.subs, ch)
	w.mu.Unlock()
}

// slices is the informer's current EndpointSlices.
func (w *sharedWatch) slices() []*endpointSlice {
	objs := w.informer.GetStore().List()
	out := make([]*endpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*endpointSlice); ok {
			out = append(out, s)
		}
	}
	return out
}

func (k watchKey) String() string {
	s := k.namespace + "/" + k.service
	if k.selector != "" {
		s += "{" + k.selector + "}"
	}
	return s
}
