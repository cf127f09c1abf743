package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// TestOpenAPIStatesConfigBounds walks config's table of ranges: the
// OpenAPI document states each field's minimum and maximum as the table
// (and so the decoders, which read the same constants) does.
func TestOpenAPIStatesConfigBounds(t *testing.T) {
	e := newEnv(t, fileRich)
	spec, _ := loadSpec(t, e)
	comps := spec["components"].(map[string]any)["schemas"].(map[string]any)
	inputOf := map[string]string{
		config.KindUpstream: "UpstreamInput", config.KindTarget: "TargetInput", config.KindService: "ServiceInput",
		config.KindRoute: "RouteInput", "rollout": "RolloutInput", "healthchecks": "Healthchecks",
	}
	// resolve follows a $ref to its component.
	resolve := func(s map[string]any) map[string]any {
		if ref, ok := s["$ref"].(string); ok {
			c, _ := comps[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			return c
		}
		return s
	}
	bounds := config.Bounds()
	if len(bounds) == 0 {
		t.Fatal("config.Bounds lists no field")
	}
	for _, b := range bounds {
		name, ok := inputOf[b.Kind]
		if !ok {
			t.Errorf("%s.%s: no input schema for kind %q", b.Kind, b.Path, b.Kind)
			continue
		}
		s, _ := comps[name].(map[string]any)
		for _, step := range strings.Split(b.Path, ".") {
			props, _ := resolve(s)["properties"].(map[string]any)
			s, _ = props[step].(map[string]any)
		}
		if s == nil {
			t.Errorf("%s.%s: not in the OpenAPI document's %s", b.Kind, b.Path, name)
			continue
		}
		s = resolve(s)
		if lo, hi := s["minimum"], s["maximum"]; lo != b.Min || hi != b.Max {
			t.Errorf("%s.%s: the OpenAPI document states %v..%v, config %v..%v", b.Kind, b.Path, lo, hi, b.Min, b.Max)
		}
	}
}

// TestAdminRefusesOutsideConfigBounds walks the same table through the
// admin API: a value just outside a field's range is a 400 naming the
// field.
func TestAdminRefusesOutsideConfigBounds(t *testing.T) {
	e := newEnv(t, fileRich)
	at := map[string]struct{ path, prefix string }{
		config.KindUpstream: {"/upstreams/example_upstream", ""},
		"healthchecks":      {"/upstreams/example_upstream", "healthchecks."},
		config.KindTarget:   {"/upstreams/example_upstream/targets/10.0.0.1:8080", ""},
		config.KindService:  {"/services/example_service", ""},
		config.KindRoute:    {"/routes/example_route", ""},
	}
	for _, b := range config.Bounds() {
		where, ok := at[b.Kind]
		if !ok {
			continue // rollouts: checked by their own tests
		}
		steps := strings.Split(where.prefix+b.Path, ".")
		for _, v := range []float64{b.Min - 1, b.Max + 1} {
			var body any = v
			for i := len(steps) - 1; i >= 0; i-- {
				body = map[string]any{steps[i]: body}
			}
			r := e.do(http.MethodPatch, where.path, body)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), steps[len(steps)-1]) {
				t.Errorf("PATCH %s %s=%v: %d %s, want a 400 naming the field", where.path, b.Path, v, r.status, r.raw)
			}
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		config.MinRolloutInterval: "1s", config.MaxRolloutInterval: "24h", 10 * time.Second: "10s",
		10 * time.Minute: "10m", 90 * time.Second: "1m30s", time.Hour + 30*time.Second: "1h0m30s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
