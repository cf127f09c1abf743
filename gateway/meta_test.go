package gateway

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/state"
)

// TestCommitIgnoresBookkeeping: the admin layer's services and routes are
// the configuration's own types and carry their Meta into the effective
// configuration; a change of that bookkeeping alone (an admin write that
// leaves the settings as they were) keeps the router.
func TestCommitIgnoresBookkeeping(t *testing.T) {
	ctx := context.Background()
	g, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Mutate(ctx, func(d *state.Doc) error {
		d.Services = map[string]*state.Service{"s2": {Meta: state.Meta{ID: "a", CreatedAt: 1, UpdatedAt: 1}, Name: "s2",
			Protocol: "http", Host: "127.0.0.1", Port: 7004, Retries: 1, ConnectTimeout: 1e9, ReadTimeout: 1e9, WriteTimeout: 1e9}}
		d.Routes = map[string]*state.Route{"r3": {Meta: state.Meta{ID: "b", CreatedAt: 1, UpdatedAt: 1}, Name: "r3",
			Paths: []string{"/c"}, Service: "s2"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	router := g.proxy.Table().Router
	if err := g.Mutate(ctx, func(d *state.Doc) error {
		d.Services["s2"].UpdatedAt, d.Routes["r3"].UpdatedAt = 2, 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if g.proxy.Table().Router != router {
		t.Error("a change of updated_at alone rebuilt the router")
	}
}
