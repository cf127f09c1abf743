//go:build unix

package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// One poller wait for a request and its answer on a plaintext upstream
// connection.
//
// An upstream cannot answer a request before it received it, so a read
// right after writing the request nearly always finds nothing (EAGAIN)
// and only then waits for readiness: one system call per exchange spent
// on learning what is known. writeRead writes the request and waits for
// readiness first, inside one syscall.RawConn.Read: the poller's
// readiness state is reset before the write, so the answer's readiness
// cannot be missed, and the first read is the one that finds the answer
// (nginx reads its upstreams so). A close or bytes that arrived while the
// connection idled in the pool came before the reset and are not seen
// until something new arrives: a full close draws a reset when written
// to, which is seen, but a half-close is not, so the engine takes this
// path only on a new connection or one idle for less than rawIdleMax.

// rawConnOf returns c's raw connection when c is plain TCP (nil else).
func rawConnOf(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawStep is the RawConn.Read callback of writeRead: first it writes what
// is left of u.rawOut without blocking (a full send buffer or an error
// ends it, writeRead finishes the ordinary way), then it waits, then it
// reads into u.rawIn.
func (u *upConn) rawStep(fd uintptr) bool {
	if u.rawPhase == rawWriting {
		for len(u.rawOut) > 0 {
			n, err := syscall.Write(int(fd), u.rawOut)
			if err == syscall.EINTR {
				continue
			}
			if n > 0 {
				u.rawOut = u.rawOut[n:]
			}
			if err == syscall.EAGAIN {
				return true // the rest with the ordinary write
			}
			if err != nil {
				u.rawErr = sysOpError(u.c, "write", err)
				return true
			}
		}
		u.rawPhase = rawReading
		return false // wait for readiness before the first read
	}
	for {
		n, err := syscall.Read(int(fd), u.rawIn)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			u.rawErr = sysOpError(u.c, "read", err)
		default:
			u.rawN = n
		}
		u.rawPhase = rawDone
		return true
	}
}

// sysOpError is the error c's Read or Write (op "read" or "write") would
// return for errno, for a system call made on c's descriptor directly.
func sysOpError(c net.Conn, op string, errno error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// rawOpError gives an error of the raw read (a deadline, a closed
// connection) the operation name of net.Conn's Read.
func rawOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "raw-read" {
		oe.Op = "read"
	}
	return err
}
