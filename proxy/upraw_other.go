//go:build !unix

package proxy

import (
	"net"
	"syscall"
)

// rawConnOf: writeRead takes the ordinary path on this platform.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (u *upConn) rawStep(uintptr) bool { return true }

func rawOpError(err error) error { return err }
