package h1

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// parseReq parses raw in one call with a fresh Request.
func parseReq(t testing.TB, raw string, lim *Limits) (*Request, int, error) {
	t.Helper()
	var r Request
	n, err := ParseRequest([]byte(raw), &r, lim)
	return &r, n, err
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return -1
}

const okHead = "GET / HTTP/1.1\r\nHost: a\r\n"

func TestParseRequestRefusals(t *testing.T) {
	long := strings.Repeat("a", 100)
	small := &Limits{MaxRequestLine: 64, MaxHeaderBytes: 128, MaxFields: 4}
	tests := []struct {
		desc   string
		raw    string
		lim    *Limits
		status int
	}{
		// Framing: Content-Length and Transfer-Encoding.
		{"both Content-Length and Transfer-Encoding", okHead + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},
		{"Transfer-Encoding then Content-Length", okHead + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", nil, 400},
		{"duplicate equal Content-Length lines", okHead + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", nil, 400},
		{"differing Content-Length lines", okHead + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", nil, 400},
		{"Content-Length list of equal values", okHead + "Content-Length: 5, 5\r\n\r\n", nil, 400},
		{"Content-Length with plus sign", okHead + "Content-Length: +5\r\n\r\n", nil, 400},
		{"Content-Length negative", okHead + "Content-Length: -1\r\n\r\n", nil, 400},
		{"Content-Length with letters", okHead + "Content-Length: 5a\r\n\r\n", nil, 400},
		{"Content-Length hex", okHead + "Content-Length: 0x5\r\n\r\n", nil, 400},
		{"Content-Length empty", okHead + "Content-Length:\r\n\r\n", nil, 400},
		{"Content-Length inner space", okHead + "Content-Length: 1 2\r\n\r\n", nil, 400},
		{"Content-Length overflows int64", okHead + "Content-Length: 9223372036854775808\r\n\r\n", nil, 400},
		{"Content-Length far overflow", okHead + "Content-Length: 99999999999999999999999\r\n\r\n", nil, 400},
		{"chunked not last", okHead + "Transfer-Encoding: chunked, gzip\r\n\r\n", nil, 400},
		{"chunked not last over two fields", okHead + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", nil, 400},
		{"gzip alone: length cannot be determined", okHead + "Transfer-Encoding: gzip\r\n\r\n", nil, 400},
		{"chunked twice", okHead + "Transfer-Encoding: chunked, chunked\r\n\r\n", nil, 400},
		{"chunked twice over two fields", okHead + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},
		{"identity is not a transfer coding any more", okHead + "Transfer-Encoding: identity\r\n\r\n", nil, 501},
		{"identity before chunked", okHead + "Transfer-Encoding: identity, chunked\r\n\r\n", nil, 501},
		{"unknown coding before chunked", okHead + "Transfer-Encoding: foo, chunked\r\n\r\n", nil, 501},
		{"empty Transfer-Encoding", okHead + "Transfer-Encoding:\r\n\r\n", nil, 400},
		{"trailing comma in Transfer-Encoding", okHead + "Transfer-Encoding: chunked,\r\n\r\n", nil, 400},
		{"leading comma in Transfer-Encoding", okHead + "Transfer-Encoding: ,chunked\r\n\r\n", nil, 400},
		{"empty element in Transfer-Encoding", okHead + "Transfer-Encoding: gzip,,chunked\r\n\r\n", nil, 400},
		{"coding with parameters", okHead + "Transfer-Encoding: chunked;q=1\r\n\r\n", nil, 400},
		{"coding with junk", okHead + "Transfer-Encoding: \"chunked\"\r\n\r\n", nil, 400},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 400},

		// Field syntax.
		{"obs-fold", okHead + "X-A: 1\r\n  continued\r\n\r\n", nil, 400},
		{"obs-fold with HTAB", okHead + "X-A: 1\r\n\tcontinued\r\n\r\n", nil, 400},
		{"whitespace before the first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", nil, 400},
		{"space between name and colon", okHead + "X-A : 1\r\n\r\n", nil, 400},
		{"HTAB between name and colon", okHead + "X-A\t: 1\r\n\r\n", nil, 400},
		{"space between Content-Length and colon", okHead + "Content-Length : 5\r\n\r\n", nil, 400},
		{"empty field name", okHead + ": 1\r\n\r\n", nil, 400},
		{"field line without colon", okHead + "X-A\r\n\r\n", nil, 400},
		{"NUL in name", okHead + "X\x00A: 1\r\n\r\n", nil, 400},
		{"non-tchar in name", okHead + "X(A): 1\r\n\r\n", nil, 400},
		{"obs-text in name", okHead + "X\xe9: 1\r\n\r\n", nil, 400},
		{"NUL in value", okHead + "X-A: 1\x002\r\n\r\n", nil, 400},
		{"control byte in value", okHead + "X-A: 1\x012\r\n\r\n", nil, 400},
		{"DEL in value", okHead + "X-A: 1\x7f2\r\n\r\n", nil, 400},
		{"bare CR in value", okHead + "X-A: 1\r2\r\n\r\n", nil, 400},
		{"DEL deep in a long value", okHead + "X-A: " + long + "\x7f" + long + "\r\n\r\n", nil, 400},

		// Line endings.
		{"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", nil, 400},
		{"bare LF after field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", nil, 400},
		{"bare LF as final line", okHead + "\n", nil, 400},
		{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", nil, 400},
		{"CR without LF at the end of the head", okHead + "\rX", nil, 400},
		{"leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"too many leading empty lines", strings.Repeat("\r\n", 9) + okHead + "\r\n", nil, 400},

		// Host.
		{"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", nil, 400},
		{"duplicate Host", okHead + "Host: b\r\n\r\n", nil, 400},
		{"duplicate Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", nil, 400},
		{"space inside Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", nil, 400},
		{"slash in Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", nil, 400},
		{"userinfo in Host", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", nil, 400},

		// Request line.
		{"invalid byte in method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"HTAB after method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"space inside target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"control byte in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"HTAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"no version (HTTP/0.9)", "GET /\r\nHost: a\r\n\r\n", nil, 400},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"two-digit minor version", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", nil, 400},
		{"version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", nil, 400},
		{"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", nil, 400},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", nil, 505},
		{"HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", nil, 505},
		{"HTTP/3.1 version", "GET / HTTP/3.1\r\nHost: a\r\n\r\n", nil, 505},
		{"asterisk-form outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"authority-form outside CONNECT", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"CONNECT with a path", "CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"CONNECT without port", "CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"CONNECT with non-digit port", "CONNECT a:8x HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"absolute-form with userinfo", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"absolute-form with empty authority", "GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"absolute-form without //", "GET http:a HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"scheme starting with a digit", "GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", nil, 400},
		{"TLS handshake is refused before the limit", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", nil, 400},

		// Connection.
		{"Connection option not a token", okHead + "Connection: a b\r\n\r\n", nil, 400},

		// Limits.
		{"request line over the limit", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", small, 414},
		{"incomplete request line over the limit", "GET /" + long, small, 414},
		{"header section over the limit", okHead + "X-A: " + long + "\r\nX-B: " + long + "\r\n\r\n", small, 431},
		{"incomplete header section over the limit", okHead + "X-A: " + long + long, small, 431},
		{"too many fields", okHead + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small, 431},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, n, err := parseReq(t, tc.raw, tc.lim)
			if got := statusOf(err); got != tc.status {
				t.Fatalf("status %d (n=%d err=%v), want %d", got, n, err, tc.status)
			}
			var e *Error
			errors.As(err, &e)
			if e.Reason == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestParseRequestFacts(t *testing.T) {
	type want struct {
		method, target, host string
		major, minor         uint8
		cl                   int64
		chunked, close       bool
		body                 BodyKind
		upgrade              string
		expect100            bool
		form                 TargetForm
		scheme, auth, path   string
		hop                  []string // names of the hop-by-hop fields
		fields               int
	}
	tests := []struct {
		desc string
		raw  string
		want want
	}{
		{"keep-alive GET", "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\n\r\n",
			want{method: "GET", target: "/a?b=c", host: "example.com", major: 1, minor: 1, cl: -1, path: "/a?b=c", fields: 2}},
		{"values lose their OWS only", "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t 1 2 \t \r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 1, cl: -1, path: "/", fields: 4}},
		{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n",
			want{method: "GET", target: "/", major: 1, minor: 0, cl: -1, close: true, path: "/"}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			want{method: "GET", target: "/", major: 1, minor: 0, cl: -1, path: "/", hop: []string{"Connection"}, fields: 1}},
		{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 1, cl: -1, close: true, path: "/", hop: []string{"Connection"}, fields: 2}},
		{"HTTP/1.2 is read as HTTP/1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 2, cl: -1, path: "/", fields: 1}},
		{"Content-Length body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:  12 \r\n\r\n",
			want{method: "POST", target: "/p", host: "a", major: 1, minor: 1, cl: 12, body: BodyLength, path: "/p", fields: 2}},
		{"Content-Length with leading zeros", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", major: 1, minor: 1, cl: 7, body: BodyLength, path: "/p", fields: 2}},
		{"Content-Length zero", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", major: 1, minor: 1, cl: 0, path: "/p", fields: 2}},
		{"chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", major: 1, minor: 1, cl: -1, chunked: true, body: BodyChunked, path: "/p", hop: []string{"Transfer-Encoding"}, fields: 2}},
		{"gzip then chunked is forwarded chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", major: 1, minor: 1, cl: -1, chunked: true, body: BodyChunked, path: "/p", hop: []string{"Transfer-Encoding", "Transfer-Encoding"}, fields: 3}},
		{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
			want{method: "GET", target: "/ws", host: "a", major: 1, minor: 1, cl: -1, upgrade: "websocket", path: "/ws", hop: []string{"Connection", "Upgrade"}, fields: 4}},
		{"Upgrade without Connection: upgrade is not an upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			want{method: "GET", target: "/ws", host: "a", major: 1, minor: 1, cl: -1, path: "/ws", hop: []string{"Upgrade"}, fields: 2}},
		{"Upgrade in HTTP/1.0 is ignored", "GET /ws HTTP/1.0\r\nConnection: upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n",
			want{method: "GET", target: "/ws", major: 1, minor: 0, cl: -1, path: "/ws", hop: []string{"Connection", "Upgrade"}, fields: 2}},
		{"Expect: 100-continue", "PUT /p HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
			want{method: "PUT", target: "/p", host: "a", major: 1, minor: 1, cl: 3, body: BodyLength, expect100: true, path: "/p", fields: 3}},
		{"Expect in HTTP/1.0 is ignored", "PUT /p HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
			want{method: "PUT", target: "/p", major: 1, minor: 0, cl: 3, body: BodyLength, close: true, path: "/p", fields: 2}},
		{"every hop-by-hop name", "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nKeep-Alive: 5\r\nProxy-Connection: k\r\nTE: trailers\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\nTrailer: X-T\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 1, cl: -1, path: "/",
				hop: []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "HTTP2-Settings", "Trailer", "X-A"}, fields: 10}},
		{"Connection nominates case-insensitively, before and after", "GET / HTTP/1.1\r\nx-foo: 1\r\nHost: a\r\nConnection: X-Foo, ,x-bar\r\nX-BAR: 2\r\nX-Baz: 3\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 1, cl: -1, path: "/", hop: []string{"x-foo", "Connection", "X-BAR"}, fields: 5}},
		{"Connection cannot nominate Host or framing fields", "POST / HTTP/1.1\r\nHost: a\r\nConnection: host, Content-Length\r\nContent-Length: 1\r\n\r\n",
			want{method: "POST", target: "/", host: "a", major: 1, minor: 1, cl: 1, body: BodyLength, path: "/", hop: []string{"Connection"}, fields: 3}},
		{"absolute-form", "GET http://Example.com:8080/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n",
			want{method: "GET", target: "http://Example.com:8080/a/b?c", host: "other", major: 1, minor: 1, cl: -1,
				form: FormAbsolute, scheme: "http", auth: "Example.com:8080", path: "/a/b?c", fields: 1}},
		{"absolute-form without path", "GET https://[::1]:443?q HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", target: "https://[::1]:443?q", host: "x", major: 1, minor: 1, cl: -1,
				form: FormAbsolute, scheme: "https", auth: "[::1]:443", path: "?q", fields: 1}},
		{"authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			want{method: "CONNECT", target: "example.com:443", host: "example.com:443", major: 1, minor: 1, cl: -1,
				form: FormAuthority, auth: "example.com:443", fields: 1}},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "OPTIONS", target: "*", host: "a", major: 1, minor: 1, cl: -1, form: FormAsterisk, fields: 1}},
		{"target kept byte for byte", "GET /a/../b/%2e%2E//c?x=%zz&y HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "GET", target: "/a/../b/%2e%2E//c?x=%zz&y", host: "a", major: 1, minor: 1, cl: -1, path: "/a/../b/%2e%2E//c?x=%zz&y", fields: 1}},
		{"empty Host is present", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			want{method: "GET", target: "/", host: "", major: 1, minor: 1, cl: -1, path: "/", fields: 1}},
		{"leading empty lines are skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "GET", target: "/", host: "a", major: 1, minor: 1, cl: -1, path: "/", fields: 1}},
		{"extension method", "PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "PROPFIND", target: "/d", host: "a", major: 1, minor: 1, cl: -1, path: "/d", fields: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			raw := tc.raw + "TRAILING"
			r, n, err := parseReq(t, raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.raw) {
				t.Fatalf("n = %d, want %d", n, len(tc.raw))
			}
			w := tc.want
			var hop []string
			for i, f := range r.Fields {
				if r.Hop.Has(i) {
					hop = append(hop, string(f.Name))
				}
			}
			got := want{
				method: string(r.Method), target: string(r.Target), host: string(r.Host),
				major: r.Major, minor: r.Minor, cl: r.ContentLength, chunked: r.Chunked, close: r.Close,
				body: r.Body, upgrade: string(r.Upgrade), expect100: r.Expect100, form: r.Form,
				scheme: string(r.Scheme), auth: string(r.Authority), path: string(r.Path), hop: hop, fields: len(r.Fields),
			}
			if strings.Join(got.hop, ",") != strings.Join(w.hop, ",") {
				t.Errorf("hop = %q, want %q", got.hop, w.hop)
			}
			got.hop, w.hop = nil, nil
			if !reflect.DeepEqual(got, w) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if tc.want.host == "" && strings.Contains(tc.raw, "Host:") && r.Host == nil {
				t.Error("an empty Host must be non-nil")
			}
			if r.KeepAlive() == r.Close {
				t.Error("KeepAlive must be !Close")
			}
		})
	}
}

func TestFieldsAreSubslicesAndExact(t *testing.T) {
	raw := []byte("GET /x HTTP/1.1\r\nHost: h\r\nX-Mixed-CASE:   v a l  \r\nX-E:\r\n\r\n")
	var r Request
	n, err := ParseRequest(raw, &r, nil)
	if err != nil || n != len(raw) {
		t.Fatal(n, err)
	}
	want := []Field{{[]byte("Host"), []byte("h")}, {[]byte("X-Mixed-CASE"), []byte("v a l")}, {[]byte("X-E"), []byte{}}}
	if len(r.Fields) != len(want) {
		t.Fatalf("fields %q", r.Fields)
	}
	for i, f := range r.Fields {
		if !bytes.Equal(f.Name, want[i].Name) || !bytes.Equal(f.Value, want[i].Value) {
			t.Errorf("field %d = %q: %q", i, f.Name, f.Value)
		}
	}
	// Writing through the buffer shows the fields alias it.
	copy(raw[len("GET /x HTTP/1.1\r\nHost: "):], "Z")
	if string(r.Host) != "Z" || string(r.Fields[0].Value) != "Z" {
		t.Fatal("Host is not a sub-slice of the buffer")
	}
	if got := string(r.Get("x-mixed-case")); got != "v a l" {
		t.Fatalf("Get = %q", got)
	}
	if s := r.Index("x-e"); !s.Has(2) || s.Has(1) {
		t.Fatal("Index")
	}
}

func TestResetKeepsCapacity(t *testing.T) {
	var r Request
	raw := []byte("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
	if _, err := ParseRequest(raw, &r, nil); err != nil {
		t.Fatal(err)
	}
	c := cap(r.Fields)
	r.Reset()
	if len(r.Fields) != 0 || cap(r.Fields) != c || r.Method != nil || r.ContentLength != -1 || r.Hop != (FieldSet{}) {
		t.Fatalf("after Reset: len %d cap %d/%d %+v", len(r.Fields), cap(r.Fields), c, r)
	}
}

func TestLimitsBoundaries(t *testing.T) {
	lim := &Limits{MaxRequestLine: 20, MaxHeaderBytes: 30, MaxFields: 2}
	line := "GET /" + strings.Repeat("a", 20-len("GET / HTTP/1.1")) + " HTTP/1.1" // exactly 20
	if len(line) != 20 {
		t.Fatal(len(line))
	}
	fields := "Host: a\r\nX: " + strings.Repeat("b", 30-len("Host: a\r\nX: \r\n\r\n")) + "\r\n\r\n" // exactly 30
	if len(fields) != 30 {
		t.Fatal(len(fields))
	}
	if _, _, err := parseReq(t, line+"\r\n"+fields, lim); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	if _, _, err := parseReq(t, "GET /a"+line[5:]+"\r\n"+fields, lim); statusOf(err) != 414 {
		t.Fatalf("one over the line limit: %v", err)
	}
	if _, _, err := parseReq(t, line+"\r\n"+"Host: a\r\nX: b"+fields[len("Host: a\r\nX: "):], lim); statusOf(err) != 431 {
		t.Fatalf("one over the header limit: %v", err)
	}
	if _, _, err := parseReq(t, line+"\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", &Limits{MaxFields: 2}); statusOf(err) != 431 {
		t.Fatalf("three fields over a limit of two: %v", err)
	}
	if _, _, err := parseReq(t, okHead+strings.Repeat("X: 1\r\n", 300)+"\r\n", &Limits{MaxFields: 1000, MaxHeaderBytes: 1 << 20}); statusOf(err) != 431 {
		t.Fatalf("MaxFields is capped at MaxFieldsCap: %v", err)
	}
	if _, _, err := parseReq(t, strings.Repeat("\r\n", 8)+okHead+"\r\n", nil); err != nil {
		t.Fatalf("eight empty lines: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		desc   string
		raw    string
		method string
		status int // refusal status; 0 when accepted
		body   BodyKind
		cl     int64
		close  bool
		code   int
		reason string
	}{
		{"200 with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 0, BodyLength, 5, false, 200, "OK"},
		{"200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 0, BodyChunked, -1, false, 200, "OK"},
		{"200 unknown coding then chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n", "GET", 0, BodyChunked, -1, false, 200, "OK"},
		{"200 gzip only: read until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", 0, BodyUntilClose, -1, true, 200, "OK"},
		{"chunked then gzip: read until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET", 0, BodyUntilClose, -1, true, 200, "OK"},
		{"200 without framing: until close", "HTTP/1.1 200 OK\r\n\r\n", "GET", 0, BodyUntilClose, -1, true, 200, "OK"},
		{"200 Content-Length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", 0, BodyNone, 0, false, 200, "OK"},
		{"HEAD response with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 0, BodyNone, 5, false, 200, "OK"},
		{"HEAD response chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", 0, BodyNone, -1, false, 200, "OK"},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", "GET", 0, BodyNone, -1, false, 204, "No Content"},
		{"304 with Content-Length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", 0, BodyNone, 9, false, 304, "Not Modified"},
		{"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", "PUT", 0, BodyNone, -1, false, 100, "Continue"},
		{"103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", 0, BodyNone, -1, false, 103, "Early Hints"},
		{"101 upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET", 0, BodyTunnel, -1, false, 101, "Switching Protocols"},
		{"2xx to CONNECT", "HTTP/1.1 200 Connection Established\r\nContent-Length: 10\r\n\r\n", "CONNECT", 0, BodyTunnel, 10, false, 200, "Connection Established"},
		{"407 to CONNECT has a body", "HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT", 0, BodyLength, 3, false, 407, "Auth"},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 200, "OK"},
		{"HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, true, 200, "OK"},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, true, 200, "OK"},
		{"no reason phrase, no space", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 200, ""},
		{"empty reason phrase", "HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 404, ""},
		{"reason with obs-text and HTAB", "HTTP/1.1 200 Tr\xe8s\tbien\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 200, "Tr\xe8s\tbien"},
		{"unregistered code", "HTTP/1.1 599 Whatever\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 599, "Whatever"},
		{"response without Host is fine", "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 1\r\n\r\n", "GET", 0, BodyLength, 1, false, 200, "OK"},

		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"status below 100", "HTTP/1.1 099 X\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"letters in status", "HTTP/1.1 2x0 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"no space after version", "HTTP/1.1200 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"not HTTP", "ICY 200 OK\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"control byte in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"both Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"duplicate Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"space before colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "GET", 502, 0, 0, false, 0, ""},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
		{"incomplete garbage is refused early", "<html>", "GET", 502, 0, 0, false, 0, ""},
		{"status line over the limit", "HTTP/1.1 200 " + strings.Repeat("x", DefaultMaxRequestLine) + "\r\n\r\n", "GET", 502, 0, 0, false, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var r Response
			raw := tc.raw + "NEXT"
			n, err := ParseResponse([]byte(raw), &r, []byte(tc.method), nil)
			if tc.status != 0 {
				if got := statusOf(err); got != tc.status {
					t.Fatalf("status %d (%v), want %d", got, err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.raw) {
				t.Fatalf("n = %d, want %d", n, len(tc.raw))
			}
			if r.Body != tc.body || r.ContentLength != tc.cl || r.Close != tc.close || r.Status != tc.code || string(r.Reason) != tc.reason {
				t.Fatalf("body %v cl %d close %v code %d reason %q", r.Body, r.ContentLength, r.Close, r.Status, r.Reason)
			}
			if tc.code == 101 && string(r.Upgrade) != "websocket" {
				t.Fatalf("Upgrade = %q", r.Upgrade)
			}
		})
	}
}

// The eight-bytes-at-a-time value scan stops exactly where the byte table
// says, for every byte value at every position of a word.
func TestScanValueEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 20; pos++ {
			b := bytes.Repeat([]byte("v"), 20)
			b[pos] = byte(c)
			want := len(b)
			if classes[c]&cValue == 0 {
				want = pos
			}
			for start := 0; start <= pos; start++ {
				if got := scanValue(b, start); got != want {
					t.Fatalf("byte %#x at %d from %d: %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
}
