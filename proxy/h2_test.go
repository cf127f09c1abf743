package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// h2Proxy is a Proxy routing every path to h.
func h2Proxy(t *testing.T, h http.Handler) *Proxy {
	t.Helper()
	origin := httptest.NewServer(h)
	t.Cleanup(origin.Close)
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: strings.TrimPrefix(origin.URL, "http://"), Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u, Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc}}})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt})
	return p
}

// h2Conn is a raw HTTP/2 client connection: the test writes and reads
// frames itself.
type h2Conn struct {
	t   *testing.T
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

// dialH2 opens a prior-knowledge connection to addr and sends the
// preface and an empty SETTINGS frame.
func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &h2Conn{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// request sends a GET of path on stream id with the extra fields.
func (c *h2Conn) request(id uint32, path string, extra ...hpack.HeaderField) {
	c.t.Helper()
	c.buf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "a.test"}, {Name: ":path", Value: path},
	}, extra...) {
		_ = c.enc.WriteField(f)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next frame, acknowledging the server's SETTINGS; it
// returns nil at the end of the connection.
func (c *h2Conn) next() http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset") {
				return nil
			}
			c.t.Fatalf("reading a frame: %v", err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if err := c.fr.WriteSettingsAck(); err != nil && !errors.Is(err, net.ErrClosed) {
				c.t.Fatal(err)
			}
		}
		return f
	}
}

// The server's SETTINGS advertise the configured limits and the frame
// size the proxy reads.
func TestH2Settings(t *testing.T) {
	p := h2Proxy(t, http.NotFoundHandler())
	url := serveEngine(t, p, ServerOptions{H2C: true, H2: H2Options{MaxConcurrentStreams: 7, MaxHeaderListSize: 5000}})
	c := dialH2(t, strings.TrimPrefix(url, "http://"))
	f, ok := c.next().(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 7,
		http2.SettingMaxHeaderListSize:    5000,
		http2.SettingMaxFrameSize:         16384,
	}
	for id, v := range want {
		if got, ok := f.Value(id); !ok || got != v {
			t.Errorf("%v = %d (sent: %v), want %d", id, got, ok, v)
		}
	}
	// The defaults.
	url = serveEngine(t, p, ServerOptions{H2C: true})
	c = dialH2(t, strings.TrimPrefix(url, "http://"))
	f = c.next().(*http2.SettingsFrame)
	if v, _ := f.Value(http2.SettingMaxConcurrentStreams); v != DefaultH2MaxConcurrentStreams {
		t.Errorf("default max concurrent streams %d", v)
	}
	if v, _ := f.Value(http2.SettingMaxHeaderListSize); v != DefaultH2MaxHeaderListSize {
		t.Errorf("default max header list size %d", v)
	}
}

// responseStatus reads frames until the response head of stream id and
// returns its :status ("" when the connection ended first).
func (c *h2Conn) responseStatus(id uint32) string {
	c.t.Helper()
	for range 100 {
		switch f := c.next().(type) {
		case nil:
			return ""
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				return f.PseudoValue("status")
			}
		case *http2.GoAwayFrame:
			c.t.Fatalf("GOAWAY %v before the response", f.ErrCode)
		}
	}
	c.t.Fatal("no response in 100 frames")
	return ""
}

// A request whose header list is over the limit is answered 431 and
// never reaches the upstream; one just under it is proxied.
func TestH2HeaderListLimit(t *testing.T) {
	hits := make(chan string, 4)
	p := h2Proxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits <- r.URL.Path }))
	url := serveEngine(t, p, ServerOptions{H2C: true, H2: H2Options{MaxHeaderListSize: 4096}})
	c := dialH2(t, strings.TrimPrefix(url, "http://"))
	// The four request pseudo-fields count 42+32*4 bytes and an extra
	// field 32 plus its name and value.
	c.request(1, "/big", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("a", 4096)})
	if s := c.responseStatus(1); s != "431" {
		t.Fatalf("over the limit: status %q, want 431", s)
	}
	c.request(3, "/ok", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("a", 3000)})
	if s := c.responseStatus(3); s != "200" {
		t.Fatalf("under the limit: status %q, want 200", s)
	}
	if got := <-hits; got != "/ok" {
		t.Fatalf("upstream saw %q", got)
	}
}

// The trailers an HTTP/2 client sends after the request body reach the
// HTTP/1.1 upstream (the reverse proxy's copy of the request would drop
// their values).
func TestH2RequestTrailers(t *testing.T) {
	p := h2Proxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.Proto+" "+r.Trailer.Get("X-T")+" "+strconv.FormatInt(n, 10))
	}))
	url := serveEngine(t, p, ServerOptions{H2C: true})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	req, _ := http.NewRequest("POST", url+"/t", nil)
	req.Trailer = http.Header{"X-T": nil}
	req.Body = io.NopCloser(io.MultiReader(strings.NewReader(strings.Repeat("b", 100000)), readFunc(func() { req.Trailer.Set("X-T", "v") })))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/1.1 v 100000" {
		t.Fatalf("upstream saw %q", b)
	}
}

// readFunc is an empty reader that runs f when read.
type readFunc func()

func (f readFunc) Read([]byte) (int, error) { f(); return 0, io.EOF }

// With h2c on, Shutdown closes a connection that has sent nothing yet as
// idle, as it does without h2c, instead of waiting for its first bytes.
func TestH2CShutdownClosesSilentConnection(t *testing.T) {
	p := h2Proxy(t, http.NotFoundHandler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewServer(ServerOptions{H2C: true})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A request on a second connection proves the first was accepted.
	c := dialH2(t, ln.Addr().String())
	c.request(1, "/x")
	if st := c.responseStatus(1); st != "404" {
		t.Fatalf("status %q", st)
	}
	_ = c.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the silent connection was not closed)", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection: read %v, want EOF", err)
	}
}
