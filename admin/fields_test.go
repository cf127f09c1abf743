package admin

import (
	"errors"
	"testing"

	"github.com/outrigger-gw/outrigger/config"
)

// TestServiceInputDocumentsTheDecoder: the OpenAPI document's service
// input properties, derived from the field table, are exactly what the
// service decoder accepts.
func TestServiceInputDocumentsTheDecoder(t *testing.T) {
	props := schemas()["ServiceInput"].(js)["properties"].(js)
	for k := range props {
		_, err := serviceDecoder(newObj(map[string]any{k: nil}, false))
		var e *Error
		if errors.As(err, &e) && e.Fields[k] == "unknown field" {
			t.Errorf("documented %q is refused as unknown", k)
		}
	}
	for _, f := range config.ServiceSchema().Fields {
		if props[f.Name] == nil {
			t.Errorf("field %q is not documented", f.Name)
		}
	}
	_, err := serviceDecoder(newObj(map[string]any{"nope": nil}, false))
	var e *Error
	if !errors.As(err, &e) || e.Fields["nope"] != "unknown field" {
		t.Errorf("an undocumented field: %v", err)
	}
}
