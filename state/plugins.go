package state

import (
	"encoding/json"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

// Plugin is an admin-owned plugin, keyed by id in the Doc. Service, Route
// and Consumer are the keys (names; a consumer's username or id) of its
// scope, "" when unscoped; Config is checked, defaults filled in.
type Plugin struct {
	Meta
	Name         string         `json:"name"`
	InstanceName string         `json:"instance_name,omitempty"`
	Config       map[string]any `json:"config,omitempty"`
	Enabled      bool           `json:"enabled"`
	Protocols    []string       `json:"protocols,omitempty"`
	Tags         []string       `json:"tags,omitempty"`
	Service      string         `json:"service,omitempty"`
	Route        string         `json:"route,omitempty"`
	Consumer     string         `json:"consumer,omitempty"`
}

// Consumer is an admin-owned consumer, keyed by username (by id when it
// has none: Username then holds the id).
type Consumer struct {
	Meta
	Username string   `json:"username"`
	CustomID string   `json:"custom_id,omitempty"`
	Tags     []string `json:"tags,omitempty"`
}

// KeyAuth is an admin-owned key-auth credential, keyed by id; Consumer is
// its consumer's key.
type KeyAuth struct {
	Meta
	Key      string   `json:"key"`
	Consumer string   `json:"consumer"`
	Tags     []string `json:"tags,omitempty"`
}

func (p *Plugin) toConfig() config.Plugin {
	return config.Plugin{ID: p.ID, Name: p.Name, InstanceName: p.InstanceName, Config: cloneConfig(p.Config),
		Enabled: p.Enabled, Protocols: slices.Clone(p.Protocols), Tags: slices.Clone(p.Tags),
		Service: p.Service, Route: p.Route, Consumer: p.Consumer}
}

func (c *Consumer) toConfig() config.Consumer {
	out := config.Consumer{ID: c.ID, Username: c.Username, CustomID: c.CustomID, Tags: slices.Clone(c.Tags)}
	if out.Username == c.ID {
		out.Username = "" // keyed by its id: it has no username
	}
	return out
}

func (k *KeyAuth) toConfig() config.KeyAuth {
	return config.KeyAuth{ID: k.ID, Key: k.Key, Consumer: k.Consumer, Tags: slices.Clone(k.Tags)}
}

// cloneConfig deep-copies a checked config (JSON-native data).
func cloneConfig(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

// mergePlugins layers the Doc's plugins, consumers and credentials over
// the file's into out.
func mergePlugins(out, f *config.File, d *Doc) {
	out.Plugins = mergeList(f.Plugins, d.Plugins, func(p config.Plugin) string { return p.ID },
		func(e *Plugin) (string, Meta) { return e.ID, e.Meta }, func(e *Plugin, _ *config.Plugin) config.Plugin { return e.toConfig() })
	out.Consumers = mergeList(f.Consumers, d.Consumers, func(c config.Consumer) string { return c.Key() },
		func(e *Consumer) (string, Meta) { return e.Username, e.Meta }, func(e *Consumer, _ *config.Consumer) config.Consumer { return e.toConfig() })
	out.KeyAuths = mergeList(f.KeyAuths, d.KeyAuths, func(k config.KeyAuth) string { return k.ID },
		func(e *KeyAuth) (string, Meta) { return e.ID, e.Meta }, func(e *KeyAuth, _ *config.KeyAuth) config.KeyAuth { return e.toConfig() })
}
