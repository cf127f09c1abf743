package admin

import (
	"strings"
	"testing"

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
