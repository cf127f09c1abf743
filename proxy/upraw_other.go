//go:build !unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf: writeRead takes the ordinary path on this platform.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (u *upConn) rawStep(uintptr) bool { return true }

func rawOpError(err error) error { return err }

// errWouldBlock is never returned on this platform.
var errWouldBlock = errors.New("would block")

func (c *client) serveRaw()                   {}
func (c *client) rawServe(uintptr) bool       { return true }
func (c *client) rawRead([]byte) (int, error) { return 0, errWouldBlock }
func (c *client) abort()                      { _ = c.nc.Close() }
