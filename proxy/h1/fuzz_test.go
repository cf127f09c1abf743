package h1

import (
	"bytes"
	"io"
	"net/http/httputil"
	"reflect"
	"testing"
	"unsafe"
)

// within reports whether s is empty or lies inside buf.
func within(buf, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= b && p+uintptr(len(s)) <= b+uintptr(len(buf))
}

func checkWithin(t *testing.T, buf []byte, ss ...[]byte) {
	t.Helper()
	for _, s := range ss {
		if !within(buf, s) {
			t.Fatalf("slice %q is not inside the buffer", s)
		}
	}
}

func checkHeaderWithin(t *testing.T, buf []byte, h *Header) {
	t.Helper()
	for _, f := range h.Fields {
		checkWithin(t, buf, f.Name, f.Value)
	}
	checkWithin(t, buf, h.Upgrade)
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range handWritten {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		n, err := ParseRequest(data, &r, nil)
		if n < 0 || n > len(data) {
			t.Fatalf("n = %d, len %d", n, len(data))
		}
		if err != nil {
			if err != ErrIncomplete && statusOf(err) < 400 {
				t.Fatalf("error is neither ErrIncomplete nor a refusal: %v", err)
			}
			return
		}
		checkWithin(t, data[:n], r.Method, r.Target, r.Host, r.Scheme, r.Authority, r.Path)
		checkHeaderWithin(t, data[:n], &r.Header)
		want := reqView(n, &r)
		// Every prefix of an accepted head is incomplete, and resuming
		// over growing prefixes ends with the same result.
		var inc Request
		for k := 0; k < n; k++ {
			if _, err := ParseRequest(data[:k], &inc, nil); err != ErrIncomplete {
				t.Fatalf("prefix %d of an accepted head: %v", k, err)
			}
		}
		m, err := ParseRequest(data, &inc, nil)
		if err != nil || !reflect.DeepEqual(reqView(m, &inc), want) {
			t.Fatalf("resumed parse differs: %v", err)
		}
		if both, err := diffRequest(data); both && err != nil {
			t.Fatalf("disagreement with net/http: %v", err)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, tc := range handWrittenResponses {
		f.Add([]byte(tc.raw), tc.method)
	}
	f.Fuzz(func(t *testing.T, data []byte, method string) {
		switch method {
		case "GET", "HEAD", "CONNECT", "POST":
		default:
			method = "GET"
		}
		var r Response
		n, err := ParseResponse(data, &r, []byte(method), nil)
		if n < 0 || n > len(data) {
			t.Fatalf("n = %d, len %d", n, len(data))
		}
		if err != nil {
			if err != ErrIncomplete && statusOf(err) != 502 {
				t.Fatalf("error is neither ErrIncomplete nor a 502 refusal: %v", err)
			}
			return
		}
		checkWithin(t, data[:n], r.Reason)
		checkHeaderWithin(t, data[:n], &r.Header)
		want := respView(n, &r)
		var inc Response
		for k := 0; k < n; k++ {
			if _, err := ParseResponse(data[:k], &inc, []byte(method), nil); err != ErrIncomplete {
				t.Fatalf("prefix %d of an accepted head: %v", k, err)
			}
		}
		m, err := ParseResponse(data, &inc, []byte(method), nil)
		if err != nil || !reflect.DeepEqual(respView(m, &inc), want) {
			t.Fatalf("resumed parse differs: %v", err)
		}
		if both, err := diffResponse(data, method); both && err != nil {
			t.Fatalf("disagreement with net/http: %v", err)
		}
	})
}

func FuzzChunked(f *testing.F) {
	for _, tc := range validChunked {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var one ChunkedScanner
		d1, n1, err1 := one.Decode(nil, data)
		if n1 < 0 || n1 > len(data) {
			t.Fatalf("n = %d, len %d", n1, len(data))
		}
		if err1 != nil && statusOf(err1) != 400 {
			t.Fatalf("error is not a 400 refusal: %v", err1)
		}
		// Byte at a time: the same end, data and refusal.
		var inc ChunkedScanner
		var d2 []byte
		n2 := 0
		var err2 error
		for i := 0; i < len(data) && !inc.Done(); i++ {
			var k int
			d2, k, err2 = inc.Decode(d2, data[i:i+1])
			n2 += k
			if err2 != nil {
				break
			}
		}
		if n1 != n2 || (err1 == nil) != (err2 == nil) || one.Done() != inc.Done() || !bytes.Equal(d1, d2) {
			t.Fatalf("one read: n=%d err=%v done=%v; byte at a time: n=%d err=%v done=%v",
				n1, err1, one.Done(), n2, err2, inc.Done())
		}
		if one.Done() && int64(len(d1)) != one.DataLen() {
			t.Fatalf("DataLen %d, data %d", one.DataLen(), len(d1))
		}
		if err1 == nil && one.Done() {
			nd, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data[:n1])))
			if err == nil && !bytes.Equal(nd, d1) {
				t.Fatalf("httputil decodes %q, we %q", nd, d1)
			}
		}
	})
}
