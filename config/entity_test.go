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

// TestServiceTLSOnlyAsWritten: a TLS setting on a plaintext service is
// refused where the file gives it, also when its value is itself wrong
// (both errors), and a list given empty counts as given.
func TestServiceTLSOnlyAsWritten(t *testing.T) {
	checkErrors(t, `services:
  - name: s
    host: h
    tls_verify: nope
    ca_certificates: []
    client_certificate: {cert_file: a}
`, nil, []wantErr{
		{4, 5, "tls_verify: only allowed when protocol is https or grpcs (protocol is http)"},
		{4, 17, `tls_verify: expected a boolean (true or false), got string "nope"`},
		{5, 5, "ca_certificates: only allowed when protocol is https or grpcs (protocol is http)"},
		{6, 5, "client_certificate: only allowed when protocol is https or grpcs (protocol is http)"},
		{6, 25, "client_certificate: cert_file and key_file are both required"},
	})
}

// TestSchemaFieldsDecoded: every field of the service and route tables
// that is not custom is read by the file's decoder (a mapping where a
// scalar or list belongs is refused under the field's name).
func TestSchemaFieldsDecoded(t *testing.T) {
	check := func(kind, base string, fields []FieldSpec) {
		for _, f := range fields {
			if f.Type == FieldCustom {
				continue
			}
			src := kind + ":\n  - " + f.Name + ": {x: 1}\n"
			for _, line := range strings.Split(base, "\n") {
				if k, _, _ := strings.Cut(line, ":"); k != f.Name {
					src += "    " + line + "\n"
				}
			}
			_, err := Parse("f.yaml", []byte(src), nil)
			if err == nil || !strings.Contains(err.Error(), ": "+f.Name+": ") {
				t.Errorf("%s.%s: %v", kind, f.Name, err)
			}
		}
	}
	var svc, rt []FieldSpec
	for _, f := range ServiceSchema().Fields {
		svc = append(svc, f.FieldSpec)
	}
	for _, f := range RouteSchema().Fields {
		rt = append(rt, f.FieldSpec)
	}
	check("services", "name: s\nhost: h", svc)
	check("routes", "name: r\npaths: [/]", rt)
}
