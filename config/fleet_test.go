package config

import (
	"strings"
	"testing"
	"time"
)

func TestFleetSection(t *testing.T) {
	f, err := Parse("f.yaml", []byte(`
admin:
  store: consul
fleet:
  group: payments-test
  id: node-1
  prefix: /gw/fleet/
  keep_versions: 5
  auto_publish: false
  report_interval: 2s
`), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	fl := f.Fleet
	if !fl.Enabled() || fl.Group != "payments-test" || fl.ID != "node-1" || fl.PrefixOrDefault() != "gw/fleet" ||
		fl.KeepOrDefault() != 5 || fl.Auto() || fl.ReportEvery() != 2*time.Second {
		t.Fatalf("%+v", fl)
	}
	// Defaults: no section is today's single-key mode.
	f, err = Parse("f.yaml", []byte("admin: {store: consul}\n"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.Fleet.Enabled() || !f.Fleet.Auto() || f.Fleet.KeepOrDefault() != DefaultKeepVersions || f.Fleet.PrefixOrDefault() != DefaultFleetPrefix {
		t.Fatalf("defaults: %+v", f.Fleet)
	}
}

func TestFleetSectionErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"fleet:\n  group: a\n", "f.yaml:2:3: group: a gateway group needs admin.store: consul"},
		{"admin: {store: consul}\nfleet:\n  group: a/b\n", "f.yaml:3:10: group: may hold only"},
		{"admin: {store: consul}\nfleet:\n  group: a\n  keep_versions: 0\n", "f.yaml:4:18: keep_versions"},
		{"admin: {store: consul}\nfleet:\n  group: a\n  auto_publish: yes please\n", "f.yaml:4:17: auto_publish"},
		{"admin: {store: consul}\nfleet:\n  groups: a\n", "f.yaml:3:3: unknown field \"groups\" in fleet"},
	} {
		_, err := Parse("f.yaml", []byte(c.src), envOf(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
}
