package state

import (
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/config"
)

// Open returns the store the admin block asks for: nil when admin changes
// live in memory only (store "file" without a state_file).
// watchErr receives the consul store's watch errors (nil: dropped).
func Open(a config.Admin, lookupEnv func(string) (string, bool), watchErr func(error)) (Store, error) {
	switch a.Store {
	case "", "file":
		if a.StateFile == "" {
			return nil, nil
		}
		return NewFileStore(a.StateFile), nil
	case "consul":
		c, err := consulClient(a, lookupEnv)
		if err != nil {
			return nil, err
		}
		var opts []ConsulOption
		if watchErr != nil {
			opts = append(opts, ConsulWatchErrors(watchErr))
		}
		return NewConsulStore(c, a.Consul.Key, opts...), nil
	}
	return nil, fmt.Errorf("admin store: unknown store %q", a.Store)
}

// OpenFleet returns the store of sidecar id in the fleet block's group,
// on the admin block's Consul agent.
func OpenFleet(a config.Admin, f config.Fleet, id string, lookupEnv func(string) (string, bool), watchErr func(error)) (*FleetStore, error) {
	if a.Store != "consul" {
		return nil, fmt.Errorf("fleet: group %q needs admin.store: consul", f.Group)
	}
	c, err := consulClient(a, lookupEnv)
	if err != nil {
		return nil, err
	}
	return NewFleetStore(c, FleetOptions{Prefix: f.PrefixOrDefault(), Group: f.Group, ID: id, Keep: f.KeepOrDefault(), OnError: watchErr}), nil
}

// consulClient is the admin block's Consul client.
func consulClient(a config.Admin, lookupEnv func(string) (string, bool)) (*api.Client, error) {
	cfg := api.DefaultConfigWithLogger(nil)
	if a.Consul.Address != "" {
		cfg.Address = a.Consul.Address
	} else if v, ok := lookupEnv("CONSUL_HTTP_ADDR"); ok && v != "" {
		cfg.Address = v
	}
	cfg.Token = ""
	if a.Consul.TokenEnv != "" {
		cfg.Token, _ = lookupEnv(a.Consul.TokenEnv)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("admin store: consul: %w", err)
	}
	return c, nil
}
