package gateway

import (
	"context"
	"net"
)

// server is what serves a listener: the engine or a net/http server.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}
