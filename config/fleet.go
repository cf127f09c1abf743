package config

import (
	"errors"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Fleet is the "fleet" section: the sidecar's gateway group and how the
// group's published versions are kept. The zero value (no section, or no
// group) is the single-key fleet mode of admin.store: consul.
// The gateway takes it at start; a reload keeps the running values.
type Fleet struct {
	Pos Pos
	// Group names the sidecar's gateway group; empty keeps the single
	// admin.consul.key shared by every sidecar. A group needs
	// admin.store: consul.
	Group string
	// ID identifies the sidecar in its group's reports; empty means the
	// host name and the proxy listen address ("host/127.0.0.1:8000").
	ID string
	// Prefix is the Consul KV prefix of every group (default
	// DefaultFleetPrefix); a group lives under PREFIX/GROUP/.
	Prefix string
	// KeepVersions is how many published versions are kept (0 means
	// DefaultKeepVersions).
	KeepVersions int
	// AutoPublish, when nil or true, publishes every admin change as a
	// new version at once; false sends admin changes to the group's draft,
	// published with POST /fleet/publish.
	AutoPublish *bool
	// ReportInterval is how often the sidecar refreshes its report (0
	// means DefaultFleetReportInterval); its Consul session's TTL is three
	// times that.
	ReportInterval time.Duration
}

// Fleet defaults.
const (
	DefaultFleetPrefix         = "outrigger/fleet"
	DefaultKeepVersions        = 20
	MaxKeepVersions            = 1000
	DefaultFleetReportInterval = 5 * time.Second
)

// Enabled reports whether the sidecar belongs to a group.
func (f Fleet) Enabled() bool { return f.Group != "" }

// PrefixOrDefault is Prefix, or DefaultFleetPrefix.
func (f Fleet) PrefixOrDefault() string {
	if f.Prefix == "" {
		return DefaultFleetPrefix
	}
	return strings.Trim(f.Prefix, "/")
}

// KeepOrDefault is KeepVersions, or DefaultKeepVersions.
func (f Fleet) KeepOrDefault() int {
	if f.KeepVersions <= 0 {
		return DefaultKeepVersions
	}
	return f.KeepVersions
}

// Auto reports whether admin changes publish a version at once.
func (f Fleet) Auto() bool { return f.AutoPublish == nil || *f.AutoPublish }

// ReportEvery is ReportInterval, or DefaultFleetReportInterval.
func (f Fleet) ReportEvery() time.Duration {
	if f.ReportInterval <= 0 {
		return DefaultFleetReportInterval
	}
	return f.ReportInterval
}

// CheckFleetName checks a group name or sidecar id: 1..128 of letters,
// digits, '.', '_', '-', ':', '@' (it is one Consul KV path segment).
func CheckFleetName(s string) error {
	if s == "" || len(s) > 128 {
		return errors.New("must be 1 to 128 characters")
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._-:@", r):
		default:
			return errors.New("may hold only letters, digits, '.', '_', '-', ':' and '@'")
		}
	}
	return nil
}

func (d *decoder) fleet(n *yaml.Node, f *Fleet) (group *yaml.Node) {
	f.Pos = pos(deref(n))
	seen := d.mapping(n, "fleet", "fleet", []field{
		{"group", d.strField(&f.Group, "group", CheckFleetName)},
		{"id", d.strField(&f.ID, "id", CheckFleetName)},
		{"prefix", d.strField(&f.Prefix, "prefix", func(s string) error {
			if strings.Trim(s, "/") == "" {
				return errors.New("must not be empty")
			}
			return nil
		})},
		{"keep_versions", d.intField(&f.KeepVersions, "keep_versions", 1, MaxKeepVersions)},
		{"auto_publish", func(v *yaml.Node) {
			if b, ok := d.boolean(v, "auto_publish"); ok {
				f.AutoPublish = &b
			}
		}},
		{"report_interval", d.durationField(&f.ReportInterval, "report_interval", true)},
	})
	if e, ok := seen["group"]; ok {
		group = e.key
	}
	return group
}

// checkFleet: a group needs the consul store.
func (d *decoder) checkFleet(f *File, group *yaml.Node) {
	if group != nil && f.Fleet.Group != "" && f.Admin.Store != "consul" {
		d.errorf(group, "group: a gateway group needs admin.store: consul (the group's versions live in Consul KV)")
	}
}
