package state_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Layers saved before upstreams and targets were stored as config's own
// types load unchanged and re-save compatibly.
//
// testdata/layer-upstreams.json is a layer in the format written so far:
// "full" sets every block, "inherit" none (each then means the file's
// block, or the default), "gone" is a tombstone.
// testdata/layer-upstreams.effective.yaml is what the code before the
// change made of it over testdata/layer-upstreams.file.yaml (exported), and
// testdata/layer-upstreams.resaved.json is the layer as saved again now,
// which that code also reads (strictly) to the same effective upstreams.
func TestLayerUpstreamsCompatible(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	decode := func(b []byte) *state.Doc {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		d := &state.Doc{}
		if err := dec.Decode(d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	file, err := config.Parse("file.yaml", read("layer-upstreams.file.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	effective := func(d *state.Doc) string {
		t.Helper()
		out, err := config.Export(&config.File{Upstreams: state.Merge(file, d).Upstreams})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	want := string(read("layer-upstreams.effective.yaml"))
	doc := decode(read("layer-upstreams.json"))
	if got := effective(doc); got != want {
		t.Errorf("effective upstreams of the stored layer =\n%s\nwant\n%s", got, want)
	}

	resaved, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.TrimSpace(read("layer-upstreams.resaved.json")); !bytes.Equal(resaved, want) {
		t.Errorf("re-saved layer =\n%s\nwant\n%s", resaved, want)
	}
	if got := effective(decode(resaved)); got != want {
		t.Errorf("effective upstreams of the re-saved layer =\n%s\nwant\n%s", got, want)
	}
	// Blocks left out stay left out: the file's keep shining through.
	var raw struct {
		Upstreams map[string]map[string]json.RawMessage `json:"upstreams"`
	}
	if err := json.Unmarshal(resaved, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slow_start", "panic", "healthchecks", "circuit_breakers", "retry_budget", "retry_policy", "sticky_sessions_cookie_ttl"} {
		if _, ok := raw.Upstreams["inherit"][k]; ok {
			t.Errorf("re-saved upstream inherit has %s", k)
		}
		if _, ok := raw.Upstreams["full"][k]; !ok {
			t.Errorf("re-saved upstream full lost %s", k)
		}
	}
	// The meta fields are the entity's own, once (an ambiguous embedded
	// field would silently vanish from the JSON).
	for _, name := range []string{"full", "inherit", "gone"} {
		for _, k := range []string{"id", "created_at", "updated_at"} {
			if _, ok := raw.Upstreams[name][k]; !ok {
				t.Errorf("re-saved upstream %s lost %s", name, k)
			}
		}
	}
	if u := doc.Upstreams["full"]; u.ID != "5d1a7a5e-7a0f-4d8e-9a51-2f0c2b7e0a01" || u.CreatedAt != 1700000000 || u.UpdatedAt != 1700000100 ||
		u.Targets[0].ID != "0b6f7f1e-1f53-4c1e-8f0e-6b1e5b0c0a02" || !doc.Upstreams["gone"].Deleted {
		t.Errorf("meta = %+v, target meta = %+v", u.Meta, u.Targets[0].Meta)
	}
	if names := slices.Sorted(func(yield func(string) bool) {
		for _, u := range state.Merge(file, doc).Upstreams {
			if !yield(u.Name) {
				return
			}
		}
	}); !slices.Equal(names, []string{"full", "inherit"}) {
		t.Errorf("effective upstreams = %v (the tombstone hides gone)", names)
	}
}
