package gateway

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/balance"
)

const zonedTargets = `
upstreams:
  - name: u1
    targets:
      - {target: 127.0.0.1:9001, zone: a}
      - {target: 127.0.0.1:9002, zone: a}
      - {target: 127.0.0.1:9003, zone: b}
      - {target: 127.0.0.1:9004, zone: b}
      - {target: 127.0.0.1:9005, zone: c}
      - {target: 127.0.0.1:9006, zone: c}
      - {target: 127.0.0.1:9007, priority: 1}
      - {target: 127.0.0.1:9008, backup: true}
`

// TestTargetLocalityFromConfig: the file's zones, priorities and backups
// and the sidecar's zone (proxy.zone, else OUTRIGGER_ZONE) reach the
// upstream's levels.
func TestTargetLocalityFromConfig(t *testing.T) {
	for _, c := range []struct {
		name, proxy, env, zone string
		want                   []string
	}{
		{"proxy.zone", "proxy:\n  zone: b\n", "", "b", []string{"127.0.0.1:9003", "127.0.0.1:9004"}},
		{"OUTRIGGER_ZONE", "", "c", "c", []string{"127.0.0.1:9005", "127.0.0.1:9006"}},
		{"no zone", "", "", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := func(k string) (string, bool) {
				if k == "OUTRIGGER_ZONE" && c.env != "" {
					return c.env, true
				}
				return "", false
			}
			g, err := New(parse(t, c.proxy+zonedTargets), Options{Log: zerolog.Nop(), LookupEnv: env})
			if err != nil {
				t.Fatal(err)
			}
			s := g.Upstream("u1").Snapshot()
			if len(s.Levels) != 3 || s.Levels[0].Targets != 6 || s.Levels[1].Priority != 1 || !s.Levels[2].Backup || s.Levels[0].Load != 100 {
				t.Fatalf("levels: %+v", s.Levels)
			}
			got := map[string]int{}
			for range 60 {
				ep, err := s.Pick(&balance.Request{})
				if err != nil {
					t.Fatal(err)
				}
				got[ep.Addr]++
			}
			if c.want == nil {
				if len(got) != 6 {
					t.Fatalf("without a zone every level-0 target is used: %v", got)
				}
				return
			}
			if len(got) != 2 || got[c.want[0]] != 30 || got[c.want[1]] != 30 || s.Levels[0].Zones[c.zone] != 100 {
				t.Fatalf("want only zone %s %v: %v, levels %+v", c.zone, c.want, got, s.Levels)
			}
		})
	}
}
