package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// BenchmarkAdminPatchTargetWeight measures admin write latency: PATCHes
// of a target's weight through the admin handler, one after the other,
// with the file store (file) and with none (memory: the gateway's own
// part). It reports the median and the 99th percentile.
func BenchmarkAdminPatchTargetWeight(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		benchPatch(b, fmt.Sprintf("admin:\n  state_file: %s\n", filepath.Join(b.TempDir(), "state.json")), 0)
	})
	b.Run("memory", func(b *testing.B) { benchPatch(b, "", 0) })
	// An admin layer of 200 upstreams: what copying the layer costs.
	b.Run("memory-200", func(b *testing.B) { benchPatch(b, "", 200) })
}

func benchPatch(b *testing.B, admin string, more int) {
	body := admin + `upstreams:
  - name: u1
    targets: [{target: "127.0.0.1:7001"}, {target: "127.0.0.1:7002"}]
  - name: u2
    targets: [{target: "127.0.0.1:7003"}]
services:
  - {name: s1, host: u1}
  - {name: s2, host: u2}
  - {name: direct, host: 127.0.0.1, port: 7004}
routes:
  - {name: r1, paths: [/a], service: s1}
  - {name: r2, paths: ["~/b/[0-9]+"], service: s2}
  - {name: r3, paths: [/c], service: direct}
`
	cfg, err := config.Parse("bench.yaml", []byte(body), nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(cfg, Options{Log: zerolog.Nop(), LoadState: true})
	if err != nil {
		b.Fatal(err)
	}
	if more > 0 {
		if err := g.Mutate(context.Background(), func(d *state.Doc) error {
			d.Upstreams = map[string]*config.Upstream{}
			for i := range more {
				name := fmt.Sprint("extra", i)
				d.Upstreams[name] = &config.Upstream{Name: name, Algorithm: "round-robin",
					Targets: []config.Target{{Target: fmt.Sprintf("127.0.0.%d:80", 1+i%250), Weight: 100}}}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	h := g.AdminHandler()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPatch, "/upstreams/u1/targets/127.0.0.1:7001",
			strings.NewReader(fmt.Sprintf(`{"weight": %d}`, 1+i%100)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("PATCH %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
