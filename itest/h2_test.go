package itest

// HTTP/2 clients of the proxy listener (proxy.h2c): the drain, and what
// reaches an HTTP/1.1 upstream.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// h2cOpts turn h2c on.
func h2cOpts() gatewayOpts { return gatewayOpts{Proxy: "  h2c: true\n"} }

// h2Client is an HTTP/2 client with prior knowledge over plaintext; dials
// counts the connections it opened.
func h2Client(dials *atomic.Int32) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			if dials != nil {
				dials.Add(1)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// h2Frames is a raw HTTP/2 client connection: the test writes and reads
// frames itself.
type h2Frames struct {
	t   *testing.T
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

// dialFrames opens a prior-knowledge connection to addr, sends the
// preface and an empty SETTINGS, and reads the server's SETTINGS. Every
// read and write must be done within 30 s. With tc set, the connection is
// TLS with ALPN h2.
func dialFrames(t *testing.T, addr string, tc *tls.Config) *h2Frames {
	t.Helper()
	var nc net.Conn
	var err error
	if tc != nil {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
		if err == nil && nc.(*tls.Conn).ConnectionState().NegotiatedProtocol != "h2" {
			err = errors.New("ALPN did not choose h2")
		}
	} else {
		nc, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &h2Frames{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.next().(*http2.SettingsFrame); !ok {
		t.Fatal("the server did not start with SETTINGS")
	}
	return c
}

// get opens stream id with a GET of path.
func (c *h2Frames) get(id uint32, path string) {
	c.t.Helper()
	c.buf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "a.test"}, {Name: ":path", Value: path},
	} {
		_ = c.enc.WriteField(f)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next frame, answering SETTINGS and PING; it returns nil
// when the server closed the connection.
func (c *h2Frames) next() http2.Frame {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		c.t.Fatalf("reading a frame: %v", err)
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			_ = c.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = c.fr.WritePing(true, f.Data)
		}
	}
	return f
}

// untilGoAway reads frames until GOAWAY and returns it.
func (c *h2Frames) untilGoAway() *http2.GoAwayFrame {
	c.t.Helper()
	for range 1000 {
		switch f := c.next().(type) {
		case nil:
			c.t.Fatal("the connection closed without GOAWAY")
		case *http2.GoAwayFrame:
			return f
		}
	}
	c.t.Fatal("no GOAWAY in 1000 frames")
	return nil
}

// TestH2Drain: on SIGTERM every HTTP/2 connection (h2c, and ALPN h2 over
// TLS) gets GOAWAY; a stream in flight finishes, a stream opened after the
// GOAWAY is never served, an idle connection closes while the in-flight
// stream is still running (not at the drain deadline), and the process
// exits once the stream is done.
func TestH2Drain(t *testing.T) {
	t.Run("h2c", func(t *testing.T) { testH2Drain(t, gatewayOpts{Proxy: "  h2c: true\n"}, "", nil) })
	t.Run("tls", func(t *testing.T) {
		ca := certtest.NewCA(t, "drain CA")
		testH2Drain(t, gatewayOpts{Listen: func(p string, _ []string) string { return fmt.Sprintf("%q", p+" ssl http2") }},
			"certificates:\n"+inlineCert(ca.Server(t, "drain.test")),
			&tls.Config{RootCAs: ca.Pool(), ServerName: "drain.test", NextProtos: []string{"h2"}})
	})
}

// testH2Drain is TestH2Drain on the listener of opts (cfg: what the
// configuration needs besides the service; tc: the TLS client settings).
func testH2Drain(t *testing.T, opts gatewayOpts, cfg string, tc *tls.Config) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var late atomic.Int32
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			entered <- struct{}{}
			<-release
			fmt.Fprint(w, "finished")
		default:
			late.Add(1)
		}
	}))
	// A drain deadline far beyond what the test waits for anything.
	opts.Drain = "120s"
	g := startGatewayOpts(t, opts, cfg+fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/]}]}
`, slow.Addr))
	busy := dialFrames(t, g.ProxyAddr, tc)
	idle := dialFrames(t, g.ProxyAddr, tc)
	busy.get(1, "/slow")
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the request never reached the backend")
	}
	g.signal(syscall.SIGTERM)

	if ga := idle.untilGoAway(); ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("idle connection: GOAWAY %v, want NO_ERROR", ga.ErrCode)
	}
	for range 100 {
		if idle.next() == nil {
			break
		}
	}
	select {
	case <-g.exited:
		t.Fatal("the gateway exited with a stream in flight")
	default:
	}

	ga := busy.untilGoAway()
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("busy connection: GOAWAY %v last stream %d, want NO_ERROR and 1", ga.ErrCode, ga.LastStreamID)
	}
	busy.get(3, "/late")
	close(release)
	var status, body string
	ended := false
	for range 1000 {
		f := busy.next()
		if f == nil {
			break
		}
		if f.Header().StreamID == 3 {
			if rst, ok := f.(*http2.RSTStreamFrame); !ok || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("stream opened after GOAWAY got %v", f)
			}
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = f.PseudoValue("status")
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				body += string(f.Data())
				ended = ended || f.StreamEnded()
			}
		}
	}
	if status != "200" || body != "finished" || !ended {
		t.Fatalf("in-flight stream: status %q body %q ended %v, want 200 finished", status, body, ended)
	}
	if n := late.Load(); n != 0 {
		t.Fatalf("the stream opened after GOAWAY reached the backend (%d requests)", n)
	}
	if code := g.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestH2ToHTTP1Upstream: what an HTTP/2 request becomes on an HTTP/1.1
// upstream and what its response becomes on the way back.
func TestH2ToHTTP1Upstream(t *testing.T) {
	be := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo", "/ph":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Proxy-Connection", "keep-alive")
			w.Header().Set("X-Seen", fmt.Sprintf("proto=%s host=%s xfp=%s xfh=%s te=%q conn=%q req-trailer=%q len=%d",
				r.Proto, r.Host, r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"),
				r.Header.Get("Te"), r.Header.Get("Connection"), r.Trailer.Get("X-Req-Trailer"), n))
			w.WriteHeader(200)
			fmt.Fprint(w, hex.EncodeToString(h.Sum(nil)))
			w.Header().Set("X-Sum", "done")
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(8<<20))
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			for range (8 << 20) / len(chunk) {
				w.Write(chunk)
			}
		case "/duplex":
			_ = http.NewResponseController(w).EnableFullDuplex()
			w.WriteHeader(200)
			rd := bufio.NewReader(r.Body)
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(w, "echo "+line)
				_ = http.NewResponseController(w).Flush()
			}
		}
	}))
	g := startGatewayOpts(t, h2cOpts(), fmt.Sprintf(`
services:
  - name: s
    url: "http://%s"
    routes:
      - {name: r, paths: [/echo, /big, /duplex], strip_path: false}
      - {name: rp, paths: [/ph], preserve_host: true, strip_path: false}
`, be.Addr))
	c := h2Client(nil)

	t.Run("headers trailers and a large body", func(t *testing.T) {
		payload := bytes.Repeat([]byte("x"), 8<<20+3)
		sum := sha256.Sum256(payload)
		req, _ := http.NewRequest("POST", g.url("/echo"), nil)
		req.Host = "front.test"
		req.Header.Set("Te", "trailers")
		req.Trailer = http.Header{"X-Req-Trailer": nil}
		req.Body = &trailerBody{r: bytes.NewReader(payload), req: req}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
		}
		want := fmt.Sprintf(`proto=HTTP/1.1 host=%s xfp=http xfh=front.test te="trailers" conn="" req-trailer="sent" len=%d`, be.Addr, len(payload))
		if got := resp.Header.Get("X-Seen"); got != want {
			t.Errorf("upstream saw\n  %s\nwant\n  %s", got, want)
		}
		if string(b) != hex.EncodeToString(sum[:]) {
			t.Errorf("body digest %q", b)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "done" {
			t.Errorf("response trailer X-Sum = %q (trailers %v)", got, resp.Trailer)
		}
		for _, h := range []string{"Keep-Alive", "Proxy-Connection", "Connection", "Transfer-Encoding"} {
			if v, ok := resp.Header[h]; ok {
				t.Errorf("hop-by-hop %s reached the client: %q", h, v)
			}
		}
	})

	t.Run(":authority is Host with preserve_host", func(t *testing.T) {
		req, _ := http.NewRequest("GET", g.url("/ph"), nil)
		req.Host = "front.test"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Seen"); !strings.Contains(got, " host=front.test ") {
			t.Fatalf("upstream saw %s", got)
		}
	})

	t.Run("a large response", func(t *testing.T) {
		resp, err := c.Get(g.url("/big"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 8<<20 || resp.ContentLength != 8<<20 {
			t.Fatalf("got %d bytes (content-length %d): %v", n, resp.ContentLength, err)
		}
	})

	t.Run("streaming both ways", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", g.url("/duplex"), pr)
		type result struct {
			resp *http.Response
			err  error
		}
		got := make(chan result, 1)
		go func() { resp, err := c.Do(req); got <- result{resp, err} }()
		// The response head arrives before the request body is over.
		if _, err := io.WriteString(pw, "ping 0\n"); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.resp.Body.Close()
		rd := bufio.NewReader(r.resp.Body)
		for i := range 3 {
			if i > 0 {
				if _, err := fmt.Fprintf(pw, "ping %d\n", i); err != nil {
					t.Fatal(err)
				}
			}
			line, err := rd.ReadString('\n')
			if want := fmt.Sprintf("echo ping %d\n", i); err != nil || line != want {
				t.Fatalf("line %d: %q, %v (the proxy buffered a direction?)", i, line, err)
			}
		}
		pw.Close()
	})
}

// trailerBody is a request body that sets the request's trailer at EOF.
type trailerBody struct {
	r   io.Reader
	req *http.Request
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.req.Trailer.Set("X-Req-Trailer", "sent")
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// TestH2ConcurrentStreams: 100 requests at once on one HTTP/2 connection
// are all in flight at the upstream together.
func TestH2ConcurrentStreams(t *testing.T) {
	const n = 100
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	be := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			fmt.Fprint(w, r.URL.Path)
		case <-time.After(30 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	g := startGatewayOpts(t, h2cOpts(), fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/]}]}
`, be.Addr))
	var dials atomic.Int32
	c := h2Client(&dials)
	// One request first, so the others share its connection.
	if s, _, _ := get(t, c, g.url("/warm")); s != 200 {
		t.Fatalf("warm-up: %d", s)
	}
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/s%d", i)
			resp, err := c.Get(g.url(path))
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != path || resp.ProtoMajor != 2 {
				errs <- fmt.Sprintf("%s: %s %d %q", path, resp.Proto, resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("the client opened %d connections, want 1", d)
	}
}
