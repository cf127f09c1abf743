package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

// An engine's upstream head: target rewritten, hop-by-hop fields dropped,
// X-Forwarded-For appended to the client's, the chunked framing kept.
func TestAppendHeadForwarding(t *testing.T) {
	raw := []byte("POST /api/users?x=1 HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Secret\r\n" +
		"X-Secret: s\r\nX-Forwarded-For: 1.1.1.1\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n" +
		"Keep-Alive: timeout=5\r\nAccept:   */*  \r\n\r\n")
	var r Request
	if _, err := ParseRequest(raw, &r, nil); err != nil {
		t.Fatal(err)
	}
	xffs := r.Index("x-forwarded-for")
	skip := r.Hop.Minus(r.TransferEncoding).Union(xffs)
	b := r.AppendHead(nil, r.Path[len("/api"):], skip)
	xff := []byte(nil)
	for i, f := range r.Fields {
		if xffs.Has(i) {
			xff = append(append(xff, f.Value...), ", "...)
		}
	}
	xff = append(xff, "10.0.0.9"...)
	b = AppendField(b, "X-Forwarded-For", xff)
	b = AppendField(b, "X-Forwarded-Proto", "http")
	b = EndHead(b)
	want := "POST /users?x=1 HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nAccept: */*\r\n" +
		"X-Forwarded-For: 1.1.1.1, 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\r\n"
	if string(b) != want {
		t.Fatalf("got\n%q\nwant\n%q", b, want)
	}
	// What was written parses again, here and in net/http.
	var again Request
	if n, err := ParseRequest(b, &again, nil); err != nil || n != len(b) {
		t.Fatalf("reparse: %d %v", n, err)
	}
	if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b))); err != nil {
		t.Fatalf("net/http: %v", err)
	}
}

func TestAppendResponseHead(t *testing.T) {
	raw := []byte("HTTP/1.0 404 Not Here\r\nConnection: keep-alive\r\nContent-Length: 0\r\nX: y\r\n\r\n")
	var r Response
	if _, err := ParseResponse(raw, &r, []byte("GET"), nil); err != nil {
		t.Fatal(err)
	}
	b := EndHead(r.AppendHead(nil, r.Hop))
	if want := "HTTP/1.1 404 Not Here\r\nContent-Length: 0\r\nX: y\r\n\r\n"; string(b) != want {
		t.Fatalf("got %q", b)
	}
}

func TestValidFieldHelpers(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"X-A", "1.2.3.4, 5.6.7.8", true},
		{"X-A", "", true},
		{"X A", "v", false},
		{"", "v", false},
		{"X-A", " v", false},
		{"X-A", "v\r\nX-Injected: 1", false},
		{"X-A", "caf\xc3\xa9", true},
	} {
		if got := ValidFieldName([]byte(tc.name)) && ValidFieldValue([]byte(tc.value)); got != tc.ok {
			t.Errorf("%q: %q = %v", tc.name, tc.value, got)
		}
	}
}

func TestFieldSet(t *testing.T) {
	var a, b FieldSet
	a.Add(0)
	a.Add(63)
	a.Add(64)
	a.Add(MaxFieldsCap - 1)
	b.Add(63)
	u := a.Minus(b)
	if !u.Has(0) || u.Has(63) || !u.Has(64) || !u.Has(MaxFieldsCap-1) || u.Has(MaxFieldsCap) || u.Has(-1) {
		t.Fatal(u)
	}
	if v := u.Union(b); !v.Has(63) {
		t.Fatal(v)
	}
}
