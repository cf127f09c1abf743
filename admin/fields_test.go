package admin

import (
	"errors"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
)

// TestInputsDocumentTheDecoders: the OpenAPI document's service and
// route input properties, derived from the field tables, are what the
// decoders accept, and every field of a table is documented.
func TestInputsDocumentTheDecoders(t *testing.T) {
	accepts := map[string]func(b *obj) error{
		"ServiceInput": func(b *obj) error { _, err := serviceDecoder(b); return err },
		"RouteInput":   func(b *obj) error { _, err := routeDecoder(b); return err },
	}
	names := map[string][]string{}
	for _, f := range config.ServiceSchema().Fields {
		names["ServiceInput"] = append(names["ServiceInput"], f.Name)
	}
	for _, f := range config.RouteSchema().Fields {
		names["RouteInput"] = append(names["RouteInput"], f.Name)
	}
	for input, decode := range accepts {
		props := schemas()[input].(js)["properties"].(js)
		for k := range props {
			var e *Error
			if err := decode(newObj(map[string]any{k: nil}, false)); errors.As(err, &e) && e.Fields[k] == "unknown field" {
				t.Errorf("%s: documented %q is refused as unknown", input, k)
			}
		}
		for _, name := range names[input] {
			if props[name] == nil {
				t.Errorf("%s: field %q is not documented", input, name)
			}
		}
		var e *Error
		if err := decode(newObj(map[string]any{"nope": nil}, false)); !errors.As(err, &e) || e.Fields["nope"] != "unknown field" {
			t.Errorf("%s: an undocumented field: %v", input, err)
		}
	}
}

// TestRouteValidateInBothWords: a route without a matcher is refused by
// the one Validate, in the file's words and in Kong's.
func TestRouteValidateInBothWords(t *testing.T) {
	r := config.Route{Name: "r"}
	ps := r.Validate()
	if len(ps) != 1 || ps[0].Field != "" || ps[0].Msg != config.NoMatcher {
		t.Fatalf("problems %+v", ps)
	}
	apply, err := routeDecoder(newObj(map[string]any{"name": "r"}, false))
	if err != nil {
		t.Fatal(err)
	}
	rt := newRoute()
	var e *Error
	if _, err := apply(&rt); !errors.As(err, &e) || e.Fields["@entity"] != "must set one of 'methods', 'hosts', 'headers', 'paths'" {
		t.Errorf("admin: %v", err)
	}
	if _, err := config.Parse("f.yaml", []byte("routes:\n  - name: r\n"), nil); err == nil ||
		err.Error() != "f.yaml:2:5: route: "+config.NoMatcher {
		t.Errorf("file: %v", err)
	}
}
