package proxy

import (
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/h1"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// The engine's steady-state cost: a raw client and a raw origin that both
// parse with h1 in fixed buffers (so they allocate nothing themselves)
// around a proxy in the same process; allocs/op is what the proxy
// allocates per exchange.

const benchResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// startBenchOrigin serves every connection: requests are parsed with h1,
// their bodies skipped, each answered benchResp; an upgrade is answered
// 101 and then echoed.
func startBenchOrigin(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go benchOriginConn(c)
		}
	}()
	return ln.Addr().String()
}

func benchOriginConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	answer := []byte(benchResp)
	var req h1.Request
	var sc h1.ChunkedScanner
	w := 0
	for {
		n, err := h1.ParseRequest(buf[:w], &req, nil)
		if err == h1.ErrIncomplete {
			m, rerr := c.Read(buf[w:])
			if rerr != nil {
				return
			}
			w += m
			continue
		}
		if err != nil {
			return
		}
		if req.Upgrade != nil {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			copy(buf, buf[n:w])
			w -= n
			if w > 0 {
				c.Write(buf[:w])
			}
			for {
				m, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(buf[:m])
			}
		}
		// Skip the body.
		switch req.Body {
		case h1.BodyLength:
			need := n + int(req.ContentLength)
			for w < need {
				m, rerr := c.Read(buf[w:])
				if rerr != nil {
					return
				}
				w += m
			}
			n = need
		case h1.BodyChunked:
			sc.Reset(nil)
			for {
				k, serr := sc.Scan(buf[n:w])
				if serr != nil {
					return
				}
				n += k
				if sc.Done() {
					break
				}
				m, rerr := c.Read(buf[w:])
				if rerr != nil {
					return
				}
				w += m
			}
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
		w = copy(buf, buf[n:w])
	}
}

// benchProxy returns a proxy with route "/" to origin.
func benchProxy(tb testing.TB, origin string) *Proxy { return benchProxyPlugins(tb, origin, nil) }

// benchProxyPlugins is benchProxy with the route's plugin chain.
func benchProxyPlugins(tb testing.TB, origin string, chain *plugins.Chain) *Proxy {
	tb.Helper()
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: origin, Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
			MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute})}
	rt, err := router.New([]router.Route{{Name: "r", Paths: []string{"/"}, Value: &Route{Name: "r", Service: svc, Plugins: chain}}})
	if err != nil {
		tb.Fatal(err)
	}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	p.SetTable(&Table{Router: rt})
	return p
}

// benchClient is a keep-alive client connection reading responses with h1.
type benchClient struct {
	method []byte
	c      net.Conn
	buf    []byte
	resp   h1.Response
}

func dialBench(tb testing.TB, addr string) *benchClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &benchClient{c: c, buf: make([]byte, 64<<10), method: []byte("GET")}
}

// do sends req and reads one response (Content-Length framed).
func (bc *benchClient) do(tb testing.TB, req []byte) {
	if _, err := bc.c.Write(req); err != nil {
		tb.Fatal(err)
	}
	w := 0
	for {
		m, err := bc.c.Read(bc.buf[w:])
		if err != nil {
			tb.Fatal(err)
		}
		w += m
		n, perr := h1.ParseResponse(bc.buf[:w], &bc.resp, bc.method, nil)
		if perr == h1.ErrIncomplete {
			continue
		}
		if perr != nil {
			tb.Fatal(perr)
		}
		for w < n+int(bc.resp.ContentLength) {
			m, err := bc.c.Read(bc.buf[w:])
			if err != nil {
				tb.Fatal(err)
			}
			w += m
		}
		if bc.resp.Status != 200 {
			tb.Fatalf("status %d", bc.resp.Status)
		}
		return
	}
}

const benchGET = "GET /x HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

func benchPOST() string {
	return "POST /x HTTP/1.1\r\nHost: bench.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n" +
		strings.Repeat("b", 4096)
}

func benchChunked() string {
	return "POST /x HTTP/1.1\r\nHost: bench.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"800\r\n" + strings.Repeat("c", 2048) + "\r\n800\r\n" + strings.Repeat("c", 2048) + "\r\n0\r\n\r\n"
}

// serveNetHTTP serves p with net/http (the other engine) for comparison.
func serveNetHTTP(tb testing.TB, p *Proxy) string {
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	return "http://" + srv.Listener.Addr().String()
}

func benchExchange(b *testing.B, netHTTP bool, reqs string) {
	req := []byte(reqs)
	p := benchProxy(b, startBenchOrigin(b))
	var url string
	if netHTTP {
		url = serveNetHTTP(b, p)
	} else {
		url = serveEngine(b, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second})
	}
	bc := dialBench(b, strings.TrimPrefix(url, "http://"))
	bc.do(b, req) // warm the pools
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, req)
	}
}

func BenchmarkEngineGET(b *testing.B)      { benchExchange(b, false, benchGET) }
func BenchmarkEnginePOST4K(b *testing.B)   { benchExchange(b, false, benchPOST()) }
func BenchmarkEngineChunked(b *testing.B)  { benchExchange(b, false, benchChunked()) }
func BenchmarkNetHTTPGET(b *testing.B)     { benchExchange(b, true, benchGET) }
func BenchmarkNetHTTPPOST4K(b *testing.B)  { benchExchange(b, true, benchPOST()) }
func BenchmarkNetHTTPChunked(b *testing.B) { benchExchange(b, true, benchChunked()) }

// BenchmarkEngineWebSocket is one whole WebSocket session per op: a new
// connection, the upgrade, one message each way, the close.
func BenchmarkEngineWebSocket(b *testing.B) {
	p := benchProxy(b, startBenchOrigin(b))
	addr := strings.TrimPrefix(serveEngine(b, p, ServerOptions{}), "http://")
	up := "GET /ws HTTP/1.1\r\nHost: bench.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	buf := make([]byte, 4096)
	var resp h1.Response
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(c, up)
		w := 0
		for {
			m, err := c.Read(buf[w:])
			if err != nil {
				b.Fatal(err)
			}
			w += m
			if _, err := h1.ParseResponse(buf[:w], &resp, []byte("GET"), nil); err == nil {
				break
			} else if err != h1.ErrIncomplete {
				b.Fatal(err)
			}
		}
		msg := "message " + strconv.Itoa(i%10)
		io.WriteString(c, msg)
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// TestEngineSteadyStateAllocs: a proxied keep-alive GET allocates
// nothing once the pools are warm (measured over the whole process: the
// raw client and origin allocate nothing themselves).
func TestEngineSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	p := benchProxy(t, startBenchOrigin(t))
	addr := strings.TrimPrefix(serveEngine(t, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second}), "http://")
	bc := dialBench(t, addr)
	req := []byte(benchGET)
	for i := 0; i < 10; i++ {
		bc.do(t, req)
	}
	if n := testing.AllocsPerRun(200, func() { bc.do(t, req) }); n != 0 {
		t.Fatalf("%v allocations per proxied GET, want 0", n)
	}
}
