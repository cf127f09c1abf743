package main

import (
	"context"
	"fmt"
	"net"

	"github.com/outrigger-gw/outrigger/config"
)

// listenProxy opens every proxy listener of p, in order; on an error the
// ones already open are closed.
func listenProxy(p config.Proxy) ([]net.Listener, error) {
	var lns []net.Listener
	for _, l := range p.ListenersOrDefault() {
		lc := net.ListenConfig{}
		if l.ReusePort {
			lc.Control = reusePort
		}
		ln, err := lc.Listen(context.Background(), "tcp", l.Address)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", l, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}
