package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMetaNotShadowed: the entity types embed Meta and define no json
// field of the same name at their own level, which encoding/json would
// resolve by dropping one of them silently.
func TestMetaNotShadowed(t *testing.T) {
	for _, v := range []any{Service{}, Upstream{}, Target{}, Route{}} {
		typ := reflect.TypeOf(v)
		metaKeys := map[string]bool{"id": true, "created_at": true, "updated_at": true, "deleted": true}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if f.Anonymous {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if metaKeys[name] || (name == "" && metaKeys[strings.ToLower(f.Name)]) {
				t.Errorf("%s.%s shadows Meta's %q", typ.Name(), f.Name, name)
			}
		}
	}
	b, err := json.Marshal(Service{Meta: Meta{ID: "abc", CreatedAt: 1, UpdatedAt: 2, Deleted: true}, Name: "s",
		ConnectTimeout: Millis(1500 * time.Millisecond), Pos: Pos{Line: 3, Col: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"abc"`, `"created_at":1`, `"updated_at":2`, `"deleted":true`, `"connect_timeout":1500`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if strings.Contains(string(b), "Pos") || strings.Contains(string(b), `"Line"`) {
		t.Errorf("%s holds the position", b)
	}
	var back Service
	if err := json.Unmarshal(b, &back); err != nil || back.ID != "abc" || back.ConnectTimeout.D() != 1500*time.Millisecond {
		t.Errorf("back %+v, %v", back, err)
	}
}
