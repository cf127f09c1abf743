//go:build unix

package proxy

import (
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/outrigger-gw/outrigger/proxy/h1"
)

// Serving a plaintext client connection without the read that finds
// nothing after each response.
//
// A keep-alive client sends its next request after it has the response,
// so the read right after the response nearly always returned EAGAIN
// before the goroutine parked. serveRaw runs the requests of a
// connection inside one syscall.RawConn.Read, so that the poller's
// readiness state is reset once, before the first read, and every
// readiness after it is kept: after a read that returned less than it
// asked for (the socket was drained), the next read first waits for
// readiness, as nginx reads its clients; a readiness that came for bytes
// already read costs one read that finds nothing, never a lost request.
//
// Inside that Read only the client's read lock is held: the exchange
// writes to the client, and reads and writes its upstream, as ever, but
// must not read the client through nc. A request whose body is not
// whole in the buffer, an upgrade, or one that fails is therefore served
// outside it, the ordinary way (serveOne's), and the next Read starts
// with a read. A connection in serveRaw cannot be closed by another
// goroutine while an exchange runs (Close waits for the read lock), so
// Shutdown and Close end it with shutdown(2) (abort) and the serving
// goroutine closes it.

// errWouldBlock is rawRead's "nothing to read now".
var errWouldBlock = syscall.EAGAIN

// serveRaw serves the connection's requests until it ends.
func (c *client) serveRaw() {
	s := c.s
	for !s.closing.Load() {
		c.shiftPipelined()
		if !c.hs.begun && !c.beginHead() {
			return // the clocks before Read: a deadline past must not fail it
		}
		c.drained, c.rawRes = false, rawClose
		if err := c.raw.Read(c.rawFn); err != nil {
			// A deadline, or closed while waiting.
			if c.hs.begun && c.w > 0 && isTimeout(err) {
				c.refuse(http.StatusRequestTimeout)
			}
			return
		}
		if c.rawRes != rawPending {
			return
		}
		n := c.rawN
		c.reqs++
		c.next = n
		if !c.handleGuarded(n) {
			return
		}
	}
}

// rawServe's outcomes, in rawRes.
const (
	rawClose   = iota // the connection ends
	rawPending        // the head at buf[:rawN] is served outside
)

// rawServe is the RawConn.Read callback of serveRaw: it reads heads and
// serves their requests until it must wait (false) or the connection
// ends or a request must be served outside (true, rawRes says which).
func (c *client) rawServe(fd uintptr) bool {
	c.fd = fd
	s := c.s
	for {
		c.shiftPipelined()
		n, st := c.readHeadStep(true)
		switch st {
		case headWait:
			return false
		case headFail:
			c.rawRes = rawClose
			return true
		}
		if !c.servableInline(n) {
			c.rawRes, c.rawN = rawPending, n
			return true
		}
		c.reqs++
		c.next = n
		if !c.handleGuarded(n) || s.closing.Load() {
			c.rawRes = rawClose
			return true
		}
	}
}

// servableInline reports whether the request with its head at buf[:n]
// can be served without reading the client again: no upgrade, and the
// body (if any) whole in the buffer.
func (c *client) servableInline(n int) bool {
	req := &c.req
	if req.Upgrade != nil {
		return false
	}
	switch req.Body {
	case h1.BodyNone:
		return true
	case h1.BodyLength:
		return int64(c.w-n) >= req.ContentLength
	}
	return false
}

// rawRead reads the client without blocking; errWouldBlock: wait for
// readiness first (the last read drained the socket, or EAGAIN).
func (c *client) rawRead(p []byte) (int, error) {
	if c.drained {
		c.drained = false
		return 0, errWouldBlock
	}
	for {
		m, err := syscall.Read(int(c.fd), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, sysOpError(c.nc, "read", err)
		case m == 0:
			return 0, io.EOF
		}
		c.drained = m < len(p)
		return m, nil
	}
}

// abort ends the connection for Shutdown or Close: shutdown(2) when it
// may be inside serveRaw (the serving goroutine then closes it), else
// Close.
func (c *client) abort() {
	if tc, ok := c.nc.(*net.TCPConn); ok && c.raw != nil {
		_ = tc.CloseRead()
		_ = tc.CloseWrite()
		return
	}
	_ = c.nc.Close()
}
