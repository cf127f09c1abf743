package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Keys compared differently: net/http moves Host to Request.Host, consumes
// Transfer-Encoding into TransferEncoding and Trailer into Trailer, and adds
// Cache-Control: no-cache when it sees Pragma: no-cache.
var notCompared = map[string]bool{"Host": true, "Transfer-Encoding": true, "Trailer": true, "Cache-Control": true}

// For a response, net/http also deletes a Connection field that says close
// (connectionCloseDeleted).
func compareFields(h *Header, nh http.Header, connectionCloseDeleted bool) error {
	ours := map[string][]string{}
	for _, f := range h.Fields {
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		ours[k] = append(ours[k], string(f.Value))
	}
	if connectionCloseDeleted && nh["Connection"] == nil {
		delete(ours, "Connection")
	}
	for k, v := range ours {
		if !notCompared[k] && !slices.Equal(v, nh[k]) {
			return fmt.Errorf("field %s: ours %q, net/http %q", k, v, nh[k])
		}
	}
	for k := range nh {
		if _, ok := ours[k]; !ok && !notCompared[k] {
			return fmt.Errorf("net/http has field %s, we do not", k)
		}
	}
	return nil
}

// ourBody returns the body framed by a head of length n in raw, and whether
// it is complete in raw.
func ourBody(raw []byte, n int, h *Header) ([]byte, bool) {
	rest := raw[n:]
	switch h.Body {
	case BodyLength:
		if int64(len(rest)) < h.ContentLength {
			return nil, false
		}
		return rest[:h.ContentLength], true
	case BodyChunked:
		var s ChunkedScanner
		d, _, err := s.Decode(nil, rest)
		return d, err == nil && s.Done()
	case BodyUntilClose:
		return rest, true
	}
	return nil, true
}

// diffRequest parses raw with both parsers. It returns whether both
// accepted it and, if so, the first disagreement.
func diffRequest(raw []byte) (both bool, err error) {
	var r Request
	n, perr := ParseRequest(raw, &r, nil)
	nr, nerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if perr != nil || nerr != nil {
		return false, nil
	}
	switch {
	case nr.Method != string(r.Method):
		return true, fmt.Errorf("method: %q vs %q", r.Method, nr.Method)
	case nr.RequestURI != string(r.Target):
		return true, fmt.Errorf("target: %q vs %q", r.Target, nr.RequestURI)
	case nr.ProtoMajor != int(r.Major) || nr.ProtoMinor != int(r.Minor):
		return true, fmt.Errorf("version: %d.%d vs %s", r.Major, r.Minor, nr.Proto)
	case nr.Close != r.Close:
		return true, fmt.Errorf("close: %v vs %v", r.Close, nr.Close)
	}
	host := string(r.Host)
	if r.Form == FormAbsolute || r.Form == FormAuthority {
		host = string(r.Authority)
		if r.Form == FormAbsolute {
			// net/http percent-decodes an absolute-form target's host
			// (url.Parse); the parser keeps the bytes as sent, which is
			// what goes upstream.
			if dec, err := url.PathUnescape(host); err == nil {
				host = dec
			}
		}
	}
	if nr.Host != host {
		return true, fmt.Errorf("host: %q vs %q", host, nr.Host)
	}
	if err := compareFields(&r.Header, nr.Header, false); err != nil {
		return true, err
	}
	wantTE := []string(nil)
	if r.Chunked {
		wantTE = []string{"chunked"}
	}
	if !slices.Equal(nr.TransferEncoding, wantTE) {
		return true, fmt.Errorf("transfer-encoding: chunked=%v vs %q", r.Chunked, nr.TransferEncoding)
	}
	wantCL := r.ContentLength
	if r.Chunked {
		wantCL = -1
	} else if wantCL < 0 {
		wantCL = 0
	}
	if nr.ContentLength != wantCL {
		return true, fmt.Errorf("content-length: %d vs %d", wantCL, nr.ContentLength)
	}
	body, complete := ourBody(raw, n, &r.Header)
	nb, berr := io.ReadAll(nr.Body)
	if berr == nil && complete && !bytes.Equal(body, nb) {
		return true, fmt.Errorf("body: %q vs %q", body, nb)
	}
	if berr == nil && !complete && r.Body == BodyLength {
		return true, fmt.Errorf("net/http read a body of %d bytes that we see as incomplete", len(nb))
	}
	return true, nil
}

func diffResponse(raw []byte, method string) (both bool, err error) {
	var r Response
	n, perr := ParseResponse(raw, &r, []byte(method), nil)
	nr, nerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if perr != nil || nerr != nil {
		return false, nil
	}
	switch {
	case nr.StatusCode != r.Status:
		return true, fmt.Errorf("status: %d vs %d", r.Status, nr.StatusCode)
	case strings.TrimSpace(strings.TrimPrefix(nr.Status, strconv.Itoa(r.Status))) != strings.TrimSpace(string(r.Reason)):
		return true, fmt.Errorf("reason: %q vs %q", r.Reason, nr.Status)
	case nr.ProtoMajor != int(r.Major) || nr.ProtoMinor != int(r.Minor):
		return true, fmt.Errorf("version: %d.%d vs %s", r.Major, r.Minor, nr.Proto)
	}
	if err := compareFields(&r.Header, nr.Header, r.Close); err != nil {
		return true, err
	}
	if r.Body == BodyTunnel {
		return true, nil // net/http leaves 101 and CONNECT bodies to its caller
	}
	if nr.Close != r.Close {
		return true, fmt.Errorf("close: %v vs %v", r.Close, nr.Close)
	}
	body, complete := ourBody(raw, n, &r.Header)
	nb, berr := io.ReadAll(nr.Body)
	if berr == nil && complete && !bytes.Equal(body, nb) {
		return true, fmt.Errorf("body (%v): %q vs %q", r.Body, body, nb)
	}
	return true, nil
}

var handWritten = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Ws: \t spaced \t \r\nX-Obs: caf\xc3\xa9\r\n\r\n",
	"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
	"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
	"GET /%20a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
	"DELETE /x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
}

var handWrittenResponses = []struct{ raw, method string }{
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET"},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "GET"},
	{"HTTP/1.1 200 OK\r\n\r\nuntil close", "GET"},
	{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", "GET"},
	{"HTTP/1.1 204 No Content\r\n\r\n", "GET"},
	{"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", "GET"},
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"},
	{"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "GET"},
	{"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 3\r\n\r\nerr", "POST"},
	{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET"},
}

func TestDifferentialHandWritten(t *testing.T) {
	for _, raw := range handWritten {
		both, err := diffRequest([]byte(raw))
		if !both {
			t.Errorf("%q: not accepted by both", raw)
		} else if err != nil {
			t.Errorf("%q: %v", raw, err)
		}
	}
	for _, tc := range handWrittenResponses {
		both, err := diffResponse([]byte(tc.raw), tc.method)
		if !both {
			t.Errorf("%q: not accepted by both", tc.raw)
		} else if err != nil {
			t.Errorf("%q: %v", tc.raw, err)
		}
	}
}

// genRequest writes a random valid request: only forms both parsers must
// accept (no coding but chunked, no '%' escapes net/url would reject).
func genRequest(rng *rand.Rand) []byte {
	const tchars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&'*+-.^_`|~"
	const pchars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?"
	pick := func(set string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[rng.IntN(len(set))]
		}
		return string(b)
	}
	value := func() string {
		n := rng.IntN(20)
		b := make([]byte, 0, n)
		for i := 0; i < n; i++ {
			switch c := rng.IntN(10); {
			case c == 0:
				b = append(b, ' ')
			case c == 1:
				b = append(b, '\t')
			case c == 2:
				b = append(b, byte(0x80+rng.IntN(128)))
			default:
				b = append(b, byte(0x21+rng.IntN(0x7e-0x21+1)))
			}
		}
		return strings.Trim(string(b), " \t")
	}
	ows := func() string { return []string{"", " ", "  ", "\t", " \t"}[rng.IntN(5)] }
	var b strings.Builder
	minor := 1
	if rng.IntN(5) == 0 {
		minor = 0
	}
	method := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "X-" + pick(tchars, 3)}[rng.IntN(7)]
	target := "/" + pick(pchars, rng.IntN(30))
	if rng.IntN(6) == 0 {
		target = "http://" + pick("abcdefghij.", 1+rng.IntN(10)) + target
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.%d\r\n", method, target, minor)
	if minor == 1 || rng.IntN(2) == 0 {
		fmt.Fprintf(&b, "Host:%s%s%s\r\n", ows(), pick("abcdefghij.-", 1+rng.IntN(10)), ows())
	}
	for i := rng.IntN(12); i > 0; i-- {
		name := "X-" + pick(tchars, 1+rng.IntN(10))
		fmt.Fprintf(&b, "%s:%s%s%s\r\n", name, ows(), value(), ows())
	}
	switch rng.IntN(4) {
	case 0:
		b.WriteString("Connection: close\r\n")
	case 1:
		b.WriteString("Connection: keep-alive\r\n")
	}
	body := pick(tchars+"\r\n\x00 ", rng.IntN(40))
	switch k := rng.IntN(3); {
	case k == 1:
		fmt.Fprintf(&b, "Content-Length:%s%d\r\n\r\n%s", ows(), len(body), body)
	case k == 2 && minor == 1:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for len(body) > 0 {
			c := 1 + rng.IntN(len(body))
			ext := ""
			if rng.IntN(3) == 0 {
				ext = ";" + pick(tchars, 3) + "=" + pick(tchars, 2)
			}
			fmt.Fprintf(&b, "%x%s\r\n%s\r\n", c, ext, body[:c])
			body = body[c:]
		}
		b.WriteString("0\r\n")
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "X-Trailer-%s: %s\r\n", pick(tchars, 3), value())
		}
		b.WriteString("\r\n")
	default:
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

func TestDifferentialGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		raw := genRequest(rng)
		both, err := diffRequest(raw)
		if !both {
			var r Request
			_, perr := ParseRequest(raw, &r, nil)
			_, nerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			t.Fatalf("%q: ours %v, net/http %v", raw, perr, nerr)
		}
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		// The chunked body, when there is one, also against
		// httputil's chunked reader.
		var r Request
		n, _ := ParseRequest(raw, &r, nil)
		if r.Chunked {
			var s ChunkedScanner
			d, _, err := s.Decode(nil, raw[n:])
			nd, nerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(raw[n:])))
			if err != nil || nerr != nil || !bytes.Equal(d, nd) {
				t.Fatalf("%q: chunked: ours %q %v, httputil %q %v", raw[n:], d, err, nd, nerr)
			}
		}
	}
}

func TestDifferentialGeneratedResponses(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		// A generated request's field section and body, under a status line.
		req := genRequest(rng)
		head := bytes.Index(req, []byte("\r\n"))
		codes := []int{200, 201, 204, 206, 301, 304, 400, 404, 500, 503}
		code := codes[rng.IntN(len(codes))]
		minor := 1
		if bytes.Contains(req[:head], []byte("HTTP/1.0")) {
			minor = 0
		}
		raw := append([]byte(fmt.Sprintf("HTTP/1.%d %d %s", minor, code, http.StatusText(code))), req[head:]...)
		method := []string{"GET", "HEAD", "POST"}[rng.IntN(3)]
		both, err := diffResponse(raw, method)
		if !both {
			var r Response
			_, perr := ParseResponse(raw, &r, []byte(method), nil)
			_, nerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
			t.Fatalf("%q: ours %v, net/http %v", raw, perr, nerr)
		}
		if err != nil {
			t.Fatalf("%q %s: %v", raw, method, err)
		}
	}
}

// What net/http accepts and this package refuses, on purpose.
func TestNetHTTPAcceptsWeRefuse(t *testing.T) {
	requests := []struct{ desc, raw, why string }{
		{"bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n", "RFC 9112 §2.2 allows it; a proxy must not read line ends differently from its upstream"},
		{"equal Content-Length lines", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "forwarded byte for byte, a duplicate may be read differently upstream"},
		{"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", "RFC 9112 §3.2: 400; net/http checks it in its server, not in ReadRequest"},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "not part of a request-target; routing on a path that hides a fragment is a bypass (HAProxy refuses it too)"},
		{"obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "not URI characters (RFC 3986); HAProxy refuses them by default"},
		{"userinfo in absolute-form", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "RFC 9110 §4.2.4: treat userinfo as an error"},
		{"asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "RFC 9112 §3.2.4: OPTIONS only"},
		{"Connection option that is not a token", "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", "it decides keep-alive and hop-by-hop fields: no guessing"},
		{"Upgrade-less Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "a Host is uri-host [:port]"},
	}
	for _, tc := range requests {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.raw))); err != nil {
				t.Fatalf("net/http refuses it now (%v): drop it from this list", err)
			}
			if _, _, err := parseReq(t, tc.raw, nil); statusOf(err) < 400 {
				t.Fatalf("we accept it: %v", err)
			}
		})
	}
	responses := []struct{ desc, raw, why string }{
		{"status below 100", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", "RFC 9110 §15: codes are 100-599; 0xx has no meaning to forward"},
		{"both Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "net/http drops Content-Length; nginx refuses, and so do we"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "as for requests"},
	}
	for _, tc := range responses {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tc.raw)), nil); err != nil {
				t.Fatalf("net/http refuses it now (%v): drop it from this list", err)
			}
			var r Response
			if _, err := ParseResponse([]byte(tc.raw), &r, []byte("GET"), nil); statusOf(err) != 502 {
				t.Fatalf("we accept it: %v", err)
			}
		})
	}
	chunks := []struct{ desc, body, why string }{
		{"invalid extension", "1;a@b\r\na\r\n0\r\n\r\n", "RFC 9112 §7.1.1 grammar; extensions are forwarded, so they must be well-formed"},
		{"whitespace after the size", "1 \r\na\r\n0\r\n\r\n", "not chunk-ext grammar: BWS must lead to ';'"},
	}
	for _, tc := range chunks {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(tc.body))); err != nil {
				t.Fatalf("httputil refuses it now (%v): drop it from this list", err)
			}
			var s ChunkedScanner
			if _, err := s.Scan([]byte(tc.body)); statusOf(err) != 400 {
				t.Fatalf("we accept it: %v", err)
			}
		})
	}
}
