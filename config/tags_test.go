package config

import (
	"slices"
	"strings"
	"testing"
)

// TestTagsParse: every entity of the file takes tags, kept in order.
func TestTagsParse(t *testing.T) {
	src := `upstreams:
  - name: u
    tags: [team-a, "prod"]
    targets:
      - {target: "127.0.0.1:80", tags: [t1]}
services:
  - name: s
    host: u
    tags: [svc]
    routes:
      - {name: r, paths: [/], tags: [edge, "ünïcode"]}
`
	f, err := Parse("ok.yaml", []byte(src), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"upstream", f.Upstreams[0].Tags, []string{"team-a", "prod"}},
		{"target", f.Upstreams[0].Targets[0].Tags, []string{"t1"}},
		{"service", f.Services[0].Tags, []string{"svc"}},
		{"route", f.Routes[0].Tags, []string{"edge", "ünïcode"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s tags %q, want %q", c.what, c.got, c.want)
		}
	}
}

// TestTagsErrors: a bad tag is an error at its own FILE:LINE:COL, on every
// entity (Kong's rules: 1 to 128 printable characters, no ',' or '/').
func TestTagsErrors(t *testing.T) {
	long := strings.Repeat("x", MaxTagLen+1)
	for _, tc := range []struct {
		desc, tag, msg string
	}{
		{"empty", `""`, "must not be empty"},
		{"129 characters", long, "129 characters, at most 128"},
		{"comma", `"a,b"`, "',' and '/' are not allowed"},
		{"slash", `"a/b"`, "',' and '/' are not allowed"},
		{"space", `"a b"`, "printable characters only"},
		{"control character", `"a\tb"`, "printable characters only"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			src := `upstreams:
  - name: u
    tags: [ok, ` + tc.tag + `]
    targets:
      - {target: "127.0.0.1:80", tags: [` + tc.tag + `]}
services:
  - name: s
    host: u
    tags: [` + tc.tag + `]
routes:
  - {name: r, service: s, paths: [/], tags: [` + tc.tag + `]}
`
			checkErrors(t, src, nil, []wantErr{
				{3, 16, tc.msg},
				{5, 41, tc.msg},
				{9, 12, tc.msg},
				{11, 46, tc.msg},
			})
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		checkErrors(t, "services:\n  - {name: s, host: h, tags: [a, b, a]}\n", nil, []wantErr{{2, 37, `tags: duplicate tag "a"`}})
	})
}
