// Package rawtest holds the raw-connection steps the listener tests of
// several packages share: dial a proxy listener, make one keep-alive
// round trip on the connection, and tell whether the peer closed it.
// The helpers write and read bytes themselves (no http.Client), so a test
// sees exactly what the gateway does with one connection.
package rawtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Dial opens a raw TCP connection to addr, closed when the test ends.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RoundTrip sends one keep-alive "GET /x" on c and reads its response
// (body included) through br, giving up after d.
func RoundTrip(c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// Closed waits up to d for the peer to close c and returns nil when it
// did (EOF, or a reset when the peer's close beat bytes still unread);
// otherwise it says what happened instead.
func Closed(br *bufio.Reader, c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := br.Read(make([]byte, 1))
	switch {
	case n != 0:
		return errors.New("the gateway sent more bytes")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("still open")
	case errors.Is(err, io.EOF), IsReset(err):
		return nil
	}
	return err
}

// IsReset reports whether err is a connection reset by the peer.
func IsReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
