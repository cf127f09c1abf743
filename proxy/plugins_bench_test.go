package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
)

// The cost of a route's plugins on both request paths: key-auth,
// rate-limiting, correlation-id and response-transformer on the route
// of the engine benchmarks (a route without plugins is
// BenchmarkEngineGET and BenchmarkNetHTTPGET).

const benchPluginGET = "GET /bench HTTP/1.1\r\nHost: bench.test\r\nApikey: bench-key\r\n\r\n"

// testPlugin is a checked plugin entity of name (the config is valid).
func testPlugin(tb testing.TB, name string, raw map[string]any) config.Plugin {
	tb.Helper()
	s, _ := config.PluginSchemaOf(name)
	c, errs := config.CheckPluginConfig(s, raw)
	if errs != nil {
		tb.Fatalf("%s: %v", name, errs)
	}
	return config.Plugin{ID: name, Name: name, Config: c, Enabled: true, Protocols: config.PluginProtocols()}
}

// testChain is the chain of ps on a route "r" of service "s", with one
// consumer "bench" of key "bench-key".
func testChain(tb testing.TB, ps ...config.Plugin) *plugins.Chain {
	tb.Helper()
	set, err := plugins.Build(plugins.Input{
		Plugins:   ps,
		Consumers: []config.Consumer{{ID: "c1", Username: "bench"}},
		KeyAuths:  []config.KeyAuth{{ID: "k1", Key: "bench-key", Consumer: "bench"}},
		Routes:    []plugins.Route{{Name: "r", Service: "s"}},
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return set.Chain("r")
}

func benchChain(tb testing.TB) *plugins.Chain {
	return testChain(tb,
		testPlugin(tb, "key-auth", map[string]any{"hide_credentials": true}),
		testPlugin(tb, "rate-limiting", map[string]any{"second": 1e9, "limit_by": "consumer"}),
		testPlugin(tb, "correlation-id", map[string]any{"echo_downstream": true}),
		testPlugin(tb, "response-transformer", map[string]any{"add": map[string]any{"headers": []any{"x-bench:1"}}}),
	)
}

func benchPluginExchange(b *testing.B, netHTTP bool) {
	p := benchProxyPlugins(b, startBenchOrigin(b), benchChain(b))
	var url string
	if netHTTP {
		url = serveNetHTTP(b, p)
	} else {
		url = serveEngine(b, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second})
	}
	bc := dialBench(b, strings.TrimPrefix(url, "http://"))
	req := []byte(benchPluginGET)
	bc.do(b, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, req)
	}
}

func BenchmarkEngineGETPlugins(b *testing.B)  { benchPluginExchange(b, false) }
func BenchmarkNetHTTPGETPlugins(b *testing.B) { benchPluginExchange(b, true) }

// TestEnginePluginsSteadyStateAllocs: with four plugins on its route, a
// proxied keep-alive GET on the engine still allocates nothing once warm.
func TestEnginePluginsSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	p := benchProxyPlugins(t, startBenchOrigin(t), benchChain(t))
	addr := strings.TrimPrefix(serveEngine(t, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second}), "http://")
	bc := dialBench(t, addr)
	req := []byte(benchPluginGET)
	for i := 0; i < 10; i++ {
		bc.do(t, req)
	}
	if n := testing.AllocsPerRun(200, func() { bc.do(t, req) }); n != 0 {
		t.Fatalf("%v allocations per proxied GET with plugins, want 0", n)
	}
}
