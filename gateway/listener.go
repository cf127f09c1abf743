package gateway

import (
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// The client side of the proxy listener, in one place: every setting of
// the proxy section that governs client connections (idle_timeout,
// header_timeout, max_connections) is applied here, whatever serves HTTP
// on the connections.

// proxyServer returns the proxy's HTTP server and the listener to serve it
// on, ln wrapped to enforce p's client connection settings.
func proxyServer(p config.Proxy, h http.Handler, ln net.Listener, errLog *log.Logger) (*http.Server, net.Listener) {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: p.HeaderTimeout,
		IdleTimeout:       p.IdleTimeout,
		ErrorLog:          errLog,
	}
	return s, newClientListener(ln, p.MaxConnections)
}

// clientListener hands out connections that answer 408 when a request's
// headers time out, at most max of them open at once when max > 0.
//
// Concurrency: sem and done are channels; closeOnce guards closing done.
type clientListener struct {
	net.Listener
	sem       chan struct{} // one token per open connection; nil: unlimited
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newClientListener(ln net.Listener, max int) *clientListener {
	l := &clientListener{Listener: ln, done: make(chan struct{})}
	if max > 0 {
		l.sem = make(chan struct{}, max)
	}
	return l
}

// Accept waits for a free slot before accepting, so connections beyond
// the limit stay in the kernel's backlog (or are refused when it is full).
func (l *clientListener) Accept() (net.Conn, error) {
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &clientConn{Conn: c, release: l.release}, nil
}

func (l *clientListener) release() {
	if l.sem != nil {
		<-l.sem
	}
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *clientListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// timeoutResponse is what a client whose request headers did not arrive
// in time receives before the connection closes.
const timeoutResponse = "HTTP/1.1 408 Request Timeout\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 30\r\n\r\n" +
	`{"message":"Request timeout"}` + "\n"

// clientConn is one client connection. The HTTP server reads a request's
// headers under a read deadline; when a read fails on that deadline with
// part of a request received (and not answered), the connection answers
// 408 before the server closes it. A connection idle between requests,
// with nothing received, closes silently.
//
// Concurrency: the server reads from one goroutine at a time but may
// write, set deadlines and close from others; the fields are atomics,
// released by closeOnce.
type clientConn struct {
	net.Conn
	release   func()
	closeOnce sync.Once
	// deadline is the read deadline in force, in Unix nanoseconds (0:
	// none).
	deadline atomic.Int64
	// pending counts the bytes received since the last response bytes
	// were written: a request not answered yet.
	pending  atomic.Int64
	timedOut atomic.Bool // the 408 was written
}

// realDeadline (2000-01-01, in Unix nanoseconds) separates deadlines that
// time a client out from the ones in the distant past that the HTTP server
// sets to abort a pending read.
const realDeadline = 946684800 * int64(time.Second)

func (c *clientConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.pending.Add(int64(n))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		if d := c.deadline.Load(); d > realDeadline && c.pending.Load() > 0 && c.timedOut.CompareAndSwap(false, true) {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte(timeoutResponse))
		}
	}
	return n, err
}

func (c *clientConn) Write(b []byte) (int, error) {
	if c.timedOut.Load() {
		// The server's own answer to the failed read (a 400) must not
		// follow the 408.
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.pending.Store(0)
	}
	return n, err
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.setDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *clientConn) setDeadline(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
}

// CloseWrite half-closes when the underlying connection can, so the
// server's graceful close after an error response keeps working.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and frees its slot (once).
func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.release)
	return err
}
