package state_test

import (
	"testing"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// TestMergeRoutePathHandling: a stored route's path_handling reaches the
// effective configuration, and a route stored without one (written before
// the field existed) gets the default.
func TestMergeRoutePathHandling(t *testing.T) {
	d := &state.Doc{Routes: map[string]*state.Route{
		"old": {Name: "old", Service: "s", Paths: []string{"/o"}},
		"v1":  {Name: "v1", Service: "s", Paths: []string{"/v"}, PathHandling: "v1"},
	}}
	eff := state.Merge(&config.File{}, d)
	got := map[string]string{}
	for _, r := range eff.Routes {
		got[r.Name] = r.PathHandling
	}
	if got["old"] != "v0" || got["v1"] != "v1" || len(got) != 2 {
		t.Fatalf("path_handling by route = %v, want old:v0 v1:v1", got)
	}
}

// TestMergeSNIs: the Doc's SNIs layer over the file's by name (a
// tombstone hides one, an entry moves one to another certificate); an SNI
// whose certificate is not in force is dropped; a certificate stored with
// the names it serves (written before SNIs were entities) keeps them; and
// each certificate's SNIs lists its names.
func TestMergeSNIs(t *testing.T) {
	const a, b, gone = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002", "cccccccc-0000-4000-8000-000000000003"
	f := &config.File{
		Certificates: []config.Certificate{{ID: a, SNIs: []string{"a.test", "hidden.test", "moved.test"}}},
		SNIs: []config.SNI{
			{ID: config.StableID("sni", "a.test"), Name: "a.test", Certificate: a},
			{ID: config.StableID("sni", "hidden.test"), Name: "hidden.test", Certificate: a},
			{ID: config.StableID("sni", "moved.test"), Name: "moved.test", Certificate: a},
		},
	}
	d := &state.Doc{
		Certificates: map[string]*state.Certificate{b: {Meta: state.Meta{ID: b, CreatedAt: 1}, SNIs: []string{"legacy.test", "a.test"}}},
		SNIs: map[string]*state.SNI{
			"hidden.test": {Meta: state.Meta{Deleted: true}, Name: "hidden.test"},
			"moved.test":  {Meta: state.Meta{ID: "m"}, Name: "moved.test", Certificate: b},
			"orphan.test": {Meta: state.Meta{ID: "o"}, Name: "orphan.test", Certificate: gone},
		},
	}
	eff := state.Merge(f, d)
	got := map[string]string{}
	for _, s := range eff.SNIs {
		got[s.Name] = s.Certificate
	}
	want := map[string]string{"a.test": a, "moved.test": b, "legacy.test": b}
	if len(got) != len(want) {
		t.Fatalf("snis %v, want %v", got, want)
	}
	for n, c := range want {
		if got[n] != c {
			t.Errorf("%s: certificate %q, want %q", n, got[n], c)
		}
	}
	for _, c := range eff.Certificates {
		switch c.ID {
		case a:
			if len(c.SNIs) != 1 || c.SNIs[0] != "a.test" {
				t.Errorf("a: %v", c.SNIs)
			}
		case b:
			if len(c.SNIs) != 2 || c.SNIs[0] != "moved.test" || c.SNIs[1] != "legacy.test" {
				t.Errorf("b: %v", c.SNIs)
			}
		}
	}
	if len(f.Certificates[0].SNIs) != 3 {
		t.Errorf("the file was modified: %v", f.Certificates[0].SNIs)
	}
}
