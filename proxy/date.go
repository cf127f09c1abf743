package proxy

import (
	"net/http"
	"sync/atomic"
	"time"
)

// dateField is the Date field line the engine adds to its own responses
// and to a forwarded response that came without one (RFC 9110 section
// 6.6.1: a recipient with a clock forwarding such a response must add
// it). It is formatted at most once a second and shared by every request.
//
// Concurrency: lock-free; a reader may see the previous second's line for
// the moment between the two stores, which the one-second resolution of
// the field allows.
type dateField struct {
	sec  atomic.Int64
	line atomic.Pointer[[]byte] // "Date: <IMF-fixdate>\r\n"
}

// at returns the field line for now.
func (d *dateField) at(now time.Time) []byte {
	s := now.Unix()
	if p := d.line.Load(); p != nil && d.sec.Load() == s {
		return *p
	}
	b := now.UTC().AppendFormat(append(make([]byte, 0, 40), "Date: "...), http.TimeFormat)
	b = append(b, '\r', '\n')
	d.line.Store(&b)
	d.sec.Store(s)
	return b
}
