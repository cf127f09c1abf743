package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
)

func TestRetryable(t *testing.T) {
	body := func(n int64) *countingBody { b := &countingBody{}; b.n.Store(n); return b }
	for _, tc := range []struct {
		desc      string
		method    string
		hasBody   bool
		read      int64
		connect   bool
		retryable bool
	}{
		{desc: "GET after connect failure", method: "GET", connect: true, retryable: true},
		{desc: "POST after connect failure", method: "POST", hasBody: true, connect: true, retryable: true},
		{desc: "POST after the exchange failed", method: "POST", hasBody: true},
		{desc: "GET after the exchange failed", method: "GET", retryable: true},
		{desc: "PUT with a body after the exchange failed", method: "PUT", hasBody: true},
		{desc: "body partly sent, even on connect failure", method: "PUT", hasBody: true, read: 10, connect: true},
		{desc: "PATCH without body after the exchange failed", method: "PATCH"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			if tc.hasBody {
				r.Body = io.NopCloser(strings.NewReader("x"))
			} else {
				r.Body = nil
			}
			if got := retryable(r, body(tc.read), tc.connect); got != tc.retryable {
				t.Fatalf("retryable = %v, want %v", got, tc.retryable)
			}
		})
	}
}

// A broken target next to a live one: every request succeeds, and the
// retry goes to the next target instead of consuming a balancer slot, so
// with two targets the broken one sees every other request, not every one.
func TestRetryGoesToNextTarget(t *testing.T) {
	var hits atomic.Int64
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "ok") }))
	defer good.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var broken atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			broken.Add(1)
			c.Close() // accepts, then hangs up without an answer
		}
	}()
	_, url := newTestProxy(t, 2, ln.Addr().String(), strings.TrimPrefix(good.URL, "http://"))
	for i := 0; i < 10; i++ {
		resp, err := http.Get(url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if hits.Load() != 10 {
		t.Fatalf("good backend served %d of 10", hits.Load())
	}
	if n := broken.Load(); n > 5 {
		t.Fatalf("the broken target was tried %d times for 10 requests; want at most 5", n)
	}
}

func TestErrorResponses(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		desc   string
		path   string
		status int
		msg    string
	}{
		{desc: "refused", path: "/x", status: 502, msg: "An invalid response was received from the upstream server"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, url := newTestProxy(t, 0, dead)
			resp, err := http.Get(url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != `{"message":"`+tc.msg+`"}` {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if resp.Header.Get("Content-Length") != "" && resp.ContentLength != int64(len(b)) {
				t.Fatalf("Content-Length %d for a %d-byte body", resp.ContentLength, len(b))
			}
		})
	}
}

func TestHashSpecKey(t *testing.T) {
	rt := &Route{}
	for _, tc := range []struct {
		desc      string
		spec      HashSpec
		req       func(*http.Request)
		wantKey   string // "" = no key
		setCookie bool
	}{
		{desc: "header", spec: HashSpec{On: HashHeader, Header: "X-User"}, req: func(r *http.Request) { r.Header.Set("X-User", "ann") }, wantKey: "ann"},
		{desc: "header absent, fallback ip", spec: HashSpec{On: HashHeader, Header: "X-User", Fallback: HashIP}, wantKey: "192.0.2.1"},
		{desc: "query arg", spec: HashSpec{On: HashQueryArg, QueryArg: "u"}, req: func(r *http.Request) { r.URL.RawQuery = "u=bob" }, wantKey: "bob"},
		{desc: "path", spec: HashSpec{On: HashPath}, wantKey: "/p"},
		{desc: "cookie present", spec: HashSpec{On: HashCookie, Cookie: "sid"}, req: func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"}) }, wantKey: "s1"},
		{desc: "cookie absent gets one", spec: HashSpec{On: HashCookie, Cookie: "sid", CookiePath: "/"}, setCookie: true},
		{desc: "nothing", spec: HashSpec{On: HashHeader, Header: "X-User"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/p", nil)
			r.RemoteAddr = "192.0.2.1:1234"
			if tc.req != nil {
				tc.req(r)
			}
			var br balance.Request
			sc := tc.spec.key(r, rt, &br)
			if tc.setCookie {
				if !strings.HasPrefix(sc, "sid=") || !br.HasKey {
					t.Fatalf("Set-Cookie %q, key %v", sc, br.HasKey)
				}
				return
			}
			if sc != "" {
				t.Fatalf("unexpected Set-Cookie %q", sc)
			}
			if tc.wantKey == "" {
				if br.HasKey {
					t.Fatal("unexpected key")
				}
				return
			}
			if !br.HasKey || br.Key != balance.HashKey(tc.wantKey) {
				t.Fatalf("key %v %x, want hash of %q", br.HasKey, br.Key, tc.wantKey)
			}
		})
	}
}
