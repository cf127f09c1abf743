package gateway

import (
	"fmt"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
)

// buildPlugins compiles the effective configuration's plugins into the
// per-route chains of the next router; prev's rate-limiting counters
// carry over.
func buildPlugins(cfg *config.File, prev *plugins.Set) (*plugins.Set, error) {
	in := plugins.Input{Plugins: cfg.Plugins, Consumers: cfg.Consumers, KeyAuths: cfg.KeyAuths}
	for _, r := range cfg.Routes {
		in.Routes = append(in.Routes, plugins.Route{Name: r.Name, Service: r.Service})
	}
	set, err := plugins.Build(in, prev)
	if err != nil {
		return nil, fmt.Errorf("%s: plugins: %w", cfg.Path, err)
	}
	return set, nil
}
