package gateway

import (
	"context"
	"log"
	"net"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/proxy"
)

// server is what serves a listener: the engine or a net/http server.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// proxyListener returns the server for the proxy listener per
// proxy.engine, and the listener to serve it on. The engine applies
// idle_timeout, header_timeout (408), max_connections, h2c and the
// http2_* limits itself; net/http gets the first three from proxyServer.
func proxyListener(p config.Proxy, h *proxy.Proxy, ln net.Listener, errLog *log.Logger) (server, net.Listener) {
	if p.Engine == config.EngineNetHTTP {
		return proxyServer(p, h, ln, errLog)
	}
	return h.NewServer(proxy.ServerOptions{
		IdleTimeout:    p.IdleTimeout,
		HeaderTimeout:  p.HeaderTimeout,
		MaxConnections: p.MaxConnections,
		H2C:            p.H2C,
		H2: proxy.H2Options{
			MaxConcurrentStreams: uint32(p.HTTP2MaxConcurrentStreams),
			MaxHeaderListSize:    uint32(p.HTTP2MaxHeaderListSize),
		},
		ErrorLog: errLog,
	}), ln
}
