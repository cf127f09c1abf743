//go:build !linux

package main

import (
	"errors"
	"syscall"
)

func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("reuseport is not supported on this platform")
}
