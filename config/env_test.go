package config

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"HOST": "db.local", "PORT": "5432", "EMPTY": ""}
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	tests := []struct {
		desc    string
		in      string
		want    string
		changed bool
		err     string
	}{
		{desc: "no dollar", in: "plain", want: "plain"},
		{desc: "set variable", in: "${HOST}:${PORT}", want: "db.local:5432", changed: true},
		{desc: "default unused when set", in: "${PORT:-80}", want: "5432", changed: true},
		{desc: "default when unset", in: "${NOPE:-80}", want: "80", changed: true},
		{desc: "default when empty", in: "${EMPTY:-x}", want: "x", changed: true},
		{desc: "empty default", in: "a${NOPE:-}b", want: "ab", changed: true},
		{desc: "default with colon and dash", in: "${NOPE:-a:-b}", want: "a:-b", changed: true},
		{desc: "set but empty without default", in: "[${EMPTY}]", want: "[]", changed: true},
		{desc: "escaped dollar", in: "$${HOST}", want: "${HOST}", changed: true},
		{desc: "double escape", in: "$$$$", want: "$$", changed: true},
		{desc: "lone dollar kept", in: "~/a/\\d+$", want: "~/a/\\d+$"},
		{desc: "dollar before other text kept", in: "$HOST $1", want: "$HOST $1"},
		{desc: "unset without default", in: "x${NOPE}", err: "environment variable NOPE is not set"},
		{desc: "unterminated", in: "${HOST", err: "unterminated variable reference"},
		{desc: "empty name", in: "${}", err: "invalid variable reference ${}"},
		{desc: "bad name", in: "${1A}", err: "invalid variable reference ${1A}"},
		{desc: "shell form without colon", in: "${A-b}", err: "invalid variable reference ${A-b}"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, changed, err := expand(tt.in, lookup)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tt.in, err)
			}
			if got != tt.want || changed != tt.changed {
				t.Errorf("expand(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
			}
		})
	}
}

func TestExpandNilLookup(t *testing.T) {
	if _, _, err := expand("${HOME}", nil); err == nil {
		t.Fatal("nil lookup resolved a variable")
	}
	if got, _, err := expand("${HOME:-/root}", nil); err != nil || got != "/root" {
		t.Fatalf("got %q, %v", got, err)
	}
}
