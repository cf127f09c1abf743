package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/outrigger-gw/outrigger/proxy/h1"
	"github.com/outrigger-gw/outrigger/upstream"
)

// The engine's upstream side: one pool of idle keep-alive connections per
// target address (and TLS or not) and transport options. Idle connections
// are reused last in, first out (the warmest first, so the others age out),
// at most MaxIdleConnsPerHost are kept per address (0 means 2, as net/http;
// negative keeps none), and one idle longer than IdleConnTimeout is closed
// (0: never). Each connection keeps its own read buffer from bufPool while
// it lives.

// upBufSize is the read buffer of an upstream connection: a response head
// must fit (a larger head is refused as a 502).
const upBufSize = 16 << 10

// upLimits bounds response heads so that they fit an upstream buffer.
func upLimits() h1.Limits {
	return h1.Limits{MaxRequestLine: 4 << 10, MaxHeaderBytes: upBufSize - 4<<10 - 64}
}

// connPools holds the pools of one TransportOptions.
//
// Concurrency: mu guards hosts; each hostPool has its own lock; bufs is
// a sync.Pool.
type connPools struct {
	o      TransportOptions
	tls    *tls.Config // the base of TLS connections (ServerName per pool)
	clk    monoClock
	dialer net.Dialer
	bufs   bufPool
	mu     sync.RWMutex
	hosts  map[poolKey]*hostPool
}

type poolKey struct {
	addr string
	tls  bool
	sni  string // TLS only: the name presented ("" for the target's host)
}

func newConnPools(o TransportOptions, tlsBase *tls.Config) *connPools {
	return &connPools{o: o, tls: tlsBase, clk: newMonoClock(), dialer: net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second},
		hosts: map[poolKey]*hostPool{}}
}

// host returns the pool of addr; sni, for TLS, is the name to present
// instead of addr's host ("" for none).
func (ps *connPools) host(addr string, useTLS bool, sni string) *hostPool {
	k := poolKey{addr, useTLS, sni}
	ps.mu.RLock()
	hp := ps.hosts[k]
	ps.mu.RUnlock()
	if hp != nil {
		return hp
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if hp = ps.hosts[k]; hp == nil {
		hp = &hostPool{ps: ps, addr: addr}
		if useTLS {
			host := sni
			if host == "" {
				h, _, err := net.SplitHostPort(addr)
				if err != nil {
					h = addr
				}
				host = h
			}
			hp.tls = ps.tls.Clone()
			hp.tls.ServerName, hp.tls.NextProtos = host, []string{"http/1.1"}
		}
		ps.hosts[k] = hp
	}
	return hp
}

func (ps *connPools) closeIdle() {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, hp := range ps.hosts {
		hp.closeIdle(0)
	}
}

// hostPool is the idle list of one address.
//
// Concurrency: mu guards idle and armed.
type hostPool struct {
	ps   *connPools
	addr string
	tls  *tls.Config // nil: plaintext

	mu    sync.Mutex
	idle  []*upConn // LIFO: the last one is the most recently used
	armed bool      // the idle cleaner is scheduled
	timer *time.Timer
}

func (hp *hostPool) maxIdle() int {
	switch n := hp.ps.o.MaxIdleConnsPerHost; {
	case n == 0:
		return 2
	case n < 0:
		return 0
	default:
		return n
	}
}

// get returns an idle connection (reused set) or nil when none is left.
func (hp *hostPool) get(now time.Time) *upConn {
	ttl := hp.ps.o.IdleConnTimeout
	for {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			return nil
		}
		uc := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		if ttl > 0 && now.Sub(uc.idleAt) > ttl {
			uc.close()
			continue
		}
		uc.reused = true
		return uc
	}
}

// dial opens a new connection, counted on brk (max_connections) until it
// closes; over the limit it fails with errConnectionLimit.
func (hp *hostPool) dial(brk *upstream.Breakers) (*upConn, error) {
	if !brk.AcquireConnection() {
		return nil, errConnectionLimit
	}
	uc, err := hp.dialCounted()
	if err != nil {
		brk.ReleaseConnection()
		return nil, err
	}
	uc.brk = brk
	return uc, nil
}

// errConnectionLimit is a dial refused by the upstream's max_connections.
var errConnectionLimit = errors.New("upstream connection limit reached")

// errPendingLimit is a request turned away by max_pending_requests: the
// connection limit was reached and as many requests already wait.
var errPendingLimit = errors.New("upstream pending request limit reached")

// waitConn waits, as one of the upstream's pending requests
// (max_pending_requests), for a connection to addr once max_connections
// are open: an idle one of hp, or room to dial. An idle connection of the
// upstream to another address is closed to make room. The wait ends at
// until (errConnectionLimit), or at once with errPendingLimit when the
// pending requests are at their limit.
func (hp *hostPool) waitConn(brk *upstream.Breakers, until time.Time) (*upConn, error) {
	if !brk.AcquirePending() {
		return nil, errPendingLimit
	}
	defer brk.ReleasePending()
	var timer *time.Timer
	for {
		ch := brk.ConnectionWait()
		now := time.Now()
		if uc := hp.get(now); uc != nil {
			return uc, nil
		}
		uc, err := hp.dial(brk)
		if err != errConnectionLimit {
			return uc, err
		}
		if hp.ps.evictIdle(brk, hp) {
			continue
		}
		if !now.Before(until) {
			return nil, errConnectionLimit
		}
		if timer == nil {
			timer = time.NewTimer(until.Sub(now))
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C: // the next round sees the deadline passed
		}
	}
}

// evictIdle closes one idle connection counted on brk in a pool other than
// except, and reports whether it found one.
func (ps *connPools) evictIdle(brk *upstream.Breakers, except *hostPool) bool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, hp := range ps.hosts {
		if hp == except {
			continue
		}
		hp.mu.Lock()
		for i, uc := range hp.idle {
			if uc.brk == brk {
				hp.idle = slices.Delete(hp.idle, i, i+1)
				hp.mu.Unlock()
				uc.close()
				return true
			}
		}
		hp.mu.Unlock()
	}
	return false
}

func (hp *hostPool) dialCounted() (*upConn, error) {
	o := &hp.ps.o
	c, err := hp.ps.dialer.DialContext(context.Background(), "tcp", hp.addr)
	if err != nil {
		return nil, &ConnectError{Addr: hp.addr, Err: err}
	}
	if hp.tls != nil {
		tc := tls.Client(c, hp.tls)
		if o.ConnectTimeout > 0 {
			_ = c.SetDeadline(time.Now().Add(o.ConnectTimeout))
		}
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		_ = c.SetDeadline(time.Time{})
		c = tc
	}
	uc := &upConn{c: c, pool: hp, rt: o.ReadTimeout, wt: o.WriteTimeout}
	if uc.raw = rawConnOf(c); uc.raw != nil {
		uc.rawFn = uc.rawStep
	}
	uc.bufp = hp.ps.bufs.get()
	uc.buf = *uc.bufp
	return uc, nil
}

// put returns a healthy connection, its response fully read, to the idle
// list; over the bound it is closed.
func (hp *hostPool) put(uc *upConn, now time.Time) {
	uc.idleAt = now
	uc.r, uc.w = 0, 0
	uc.setCap(time.Time{})
	if brk := uc.brk; brk != nil {
		// Once listed, the connection may be another exchange's.
		defer brk.ConnectionFreed()
	}
	hp.mu.Lock()
	if len(hp.idle) >= hp.maxIdle() {
		hp.mu.Unlock()
		uc.close()
		return
	}
	hp.idle = append(hp.idle, uc)
	arm := !hp.armed && hp.ps.o.IdleConnTimeout > 0
	if arm {
		hp.armed = true
		if hp.timer == nil {
			hp.timer = time.AfterFunc(hp.ps.o.IdleConnTimeout, hp.clean)
		} else {
			hp.timer.Reset(hp.ps.o.IdleConnTimeout)
		}
	}
	hp.mu.Unlock()
}

// clean closes the connections idle longer than IdleConnTimeout and
// reschedules itself while some are left.
func (hp *hostPool) clean() {
	ttl := hp.ps.o.IdleConnTimeout
	left := hp.closeIdle(ttl)
	hp.mu.Lock()
	defer hp.mu.Unlock()
	if left > 0 || len(hp.idle) > 0 {
		hp.timer.Reset(ttl)
	} else {
		hp.armed = false
	}
}

// closeIdle closes the idle connections older than ttl (all of them when
// ttl is 0) and returns how many are left.
func (hp *hostPool) closeIdle(ttl time.Duration) int {
	now := time.Now()
	hp.mu.Lock()
	var drop []*upConn
	keep := hp.idle[:0]
	for _, uc := range hp.idle {
		if ttl == 0 || now.Sub(uc.idleAt) > ttl {
			drop = append(drop, uc)
		} else {
			keep = append(keep, uc)
		}
	}
	clear(hp.idle[len(keep):])
	hp.idle = keep
	n := len(keep)
	hp.mu.Unlock()
	for _, uc := range drop {
		uc.close()
	}
	return n
}

// upConn is one upstream connection, owned by one exchange at a time (or
// by its pool while idle).
type upConn struct {
	c    net.Conn
	pool *hostPool
	// brk counts the connection open on the upstream that dialled it
	// (a pooled connection another upstream reuses stays counted there).
	brk    *upstream.Breakers
	bufp   *[]byte
	buf    []byte // read buffer (*bufp); buf[r:w] is unconsumed
	r, w   int
	resp   h1.Response
	hn     int // length of the final response head at buf[r:]
	idleAt time.Time
	reused bool // taken from the idle list
	rt, wt time.Duration
	rd, wd deadline // c's read and write deadlines (rolling: deadline.go)
	// cap, when not 0, is a fixed deadline (on the pool's clock) for
	// reads and writes: the attempt's per-try or overall timeout.
	cap int64

	// raw is c's raw connection when c is plain TCP (nil else), rawFn
	// its bound rawStep, and the rest writeRead's state (upraw_unix.go).
	raw      syscall.RawConn
	rawFn    func(fd uintptr) bool
	rawPhase int
	rawOut   []byte
	rawIn    []byte
	rawN     int
	rawErr   error
}

// rawIdleMax is how long a pooled connection may have idled and still be
// written with writeRead: a close or bytes the upstream sent while it
// idled are only seen by a read before the write (an upstream that
// half-closed and still reads, as Apache's lingering close, would be
// waited on until read_timeout), and upstreams idle-close after seconds.
const rawIdleMax = 100 * time.Millisecond

// writeRead's phases.
const (
	rawWriting = iota
	rawReading
	rawDone
)

// Read enforces read_timeout (the longest wait for one read) and the
// attempt's cap.
func (u *upConn) Read(p []byte) (int, error) {
	u.armRead()
	return u.c.Read(p)
}

// armRead sets the read deadline Read needs.
func (u *upConn) armRead() {
	if u.rt > 0 || u.cap != 0 {
		clk := u.pool.ps.clk
		if now := clk.now(); u.cap != 0 && (u.rt <= 0 || now+int64(u.rt)+deadlineSlack(u.rt) >= u.cap) {
			if u.rd.at != u.cap {
				u.rd.exact(u.c.SetReadDeadline, clk, u.cap)
			}
		} else {
			u.rd.roll(u.c.SetReadDeadline, clk, now, u.rt)
		}
	}
}

// Write enforces write_timeout and, like deadlineConn, pushes the read
// deadline out so a connection from the pool has no stale one; the
// attempt's cap bounds both.
func (u *upConn) Write(p []byte) (int, error) {
	u.armWrite()
	return u.c.Write(p)
}

// armWrite sets the deadlines Write needs.
func (u *upConn) armWrite() {
	if u.cap != 0 {
		clk := u.pool.ps.clk
		if u.wd.at != u.cap {
			u.wd.exact(u.c.SetWriteDeadline, clk, u.cap)
		}
		if u.rd.at != u.cap {
			u.rd.exact(u.c.SetReadDeadline, clk, u.cap)
		}
	} else if u.wt > 0 || u.rt > 0 {
		clk := u.pool.ps.clk
		now := clk.now()
		if u.wt > 0 {
			u.wd.roll(u.c.SetWriteDeadline, clk, now, u.wt)
		}
		if u.rt > 0 {
			u.rd.roll(u.c.SetReadDeadline, clk, now, u.rt)
		}
	}
}

// writeRead writes out and then reads once into in, as Write and Read
// would with their deadlines, but on a plaintext TCP connection without
// the read that would find nothing yet (upraw_unix.go). wrote reports
// whether out went whole; err is the write's error when not, else the
// read's (n is 0 with it).
func (u *upConn) writeRead(out, in []byte) (n int, wrote bool, err error) {
	if u.raw == nil {
		if _, err := u.Write(out); err != nil {
			return 0, false, err
		}
		n, err := u.Read(in)
		return n, true, err
	}
	u.armWrite()
	u.armRead()
	u.rawPhase, u.rawOut, u.rawIn, u.rawN, u.rawErr = rawWriting, out, in, 0, nil
	rerr := u.raw.Read(u.rawFn)
	phase, rest, n, err := u.rawPhase, u.rawOut, u.rawN, u.rawErr
	u.rawOut, u.rawIn, u.rawErr = nil, nil, nil
	if phase == rawWriting {
		if err != nil {
			return 0, false, err
		}
		if rerr != nil {
			return 0, false, rawOpError(rerr)
		}
		// The send buffer was full: the rest the ordinary way.
		if _, err := u.c.Write(rest); err != nil {
			return 0, false, err
		}
		n, err := u.c.Read(in)
		return n, true, err
	}
	if phase == rawReading {
		return 0, true, rawOpError(rerr) // a deadline or a close while waiting
	}
	if err == nil && n == 0 && len(in) > 0 {
		err = io.EOF
	}
	return n, true, err
}

// setCap bounds the connection's reads and writes by at (per_try_timeout
// and the retry policy's timeout, up to the response head); the zero time
// lifts the cap, back to the rolling timeouts alone.
func (u *upConn) setCap(at time.Time) {
	if at.IsZero() {
		if u.cap == 0 {
			return
		}
		u.cap = 0
		u.rd.clear(u.c.SetReadDeadline)
		u.wd.clear(u.c.SetWriteDeadline)
		return
	}
	u.cap = max(int64(at.Sub(u.pool.ps.clk.base)), 1)
}

func (u *upConn) close() {
	_ = u.c.Close()
	if u.brk != nil {
		u.brk.ReleaseConnection()
		u.brk = nil
	}
	if u.bufp != nil {
		u.pool.ps.bufs.put(u.bufp)
		u.bufp, u.buf = nil, nil
	}
}

// bufPool recycles read buffers of upBufSize bytes; the zero value is
// ready.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, upBufSize)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if cap(*b) == upBufSize {
		*b = (*b)[:upBufSize]
		bp.p.Put(b)
	}
}
