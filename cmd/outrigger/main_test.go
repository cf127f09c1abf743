package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) (string, bool) { return "", false }

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("upstreams:\n  - name: u\n    targets: [{target: 127.0.0.1:1}]\nservices:\n  - {name: s, host: u, routes: [{name: r, paths: [/]}]}\n"), 0o600)
	os.WriteFile(bad, []byte("upstreams:\n  - name: u\n    targets: [{target: 127.0.0.1:1, weight: -1}]\n"), 0o600)
	nul := filepath.Join(dir, "nul.yaml")
	os.WriteFile(nul, []byte("log:\n  level: in\x00fo\n"), 0o600)
	syntax := filepath.Join(dir, "syntax.yaml")
	os.WriteFile(syntax, []byte("log:\n  level: info\n   format: json\n"), 0o600)
	badUTF8 := filepath.Join(dir, "utf8.yaml")
	os.WriteFile(badUTF8, []byte("log:\n  level: in\xfffo\n"), 0o600)
	ctrl := filepath.Join(dir, "ctrl.yaml")
	os.WriteFile(ctrl, []byte("log:\n  level: in\x07fo\n"), 0o600)
	// 10 MB without an alias: refused only for what it says, at its place.
	big := filepath.Join(dir, "big.yaml")
	var b strings.Builder
	b.WriteString("upstreams:\n  - name: u\n    targets:\n")
	for n := 0; b.Len() < 10<<20; n++ {
		fmt.Fprintf(&b, "      - {target: 10.%d.%d.%d:80, weight: 1}\n", n>>16&255, n>>8&255, n&255)
	}
	bigLines := strings.Count(b.String(), "\n")
	b.WriteString("services:\n  - {name: s, host: u, retries: -1}\n")
	os.WriteFile(big, []byte(b.String()), 0o600)
	for _, tc := range []struct {
		desc     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout+stderr
		notOut   string // when set, not in stdout+stderr
	}{
		{desc: "no args", args: nil, wantCode: 2, wantOut: "Usage:"},
		{desc: "help", args: []string{"--help"}, wantCode: 0, wantOut: "outrigger run --config FILE"},
		{desc: "version", args: []string{"version"}, wantCode: 0, wantOut: "outrigger dev"},
		{desc: "unknown command", args: []string{"fly"}, wantCode: 2, wantOut: `unknown command "fly"`},
		{desc: "run help", args: []string{"run", "--help"}, wantCode: 0, wantOut: "-proxy-listen"},
		{desc: "validate help", args: []string{"validate", "-h"}, wantCode: 0, wantOut: "-config"},
		{desc: "demo help", args: []string{"demo", "--help"}, wantCode: 0, wantOut: "-admin-listen"},
		{desc: "validate good", args: []string{"validate", "--config", good}, wantCode: 0, wantOut: "OK (1 upstreams, 1 services, 1 routes)"},
		{desc: "validate bad", args: []string{"validate", "--config", bad}, wantCode: 2, wantOut: bad + ":3:"},
		{desc: "validate NUL byte", args: []string{"validate", "--config", nul}, wantCode: 2, wantOut: nul + ":2:12: NUL byte"},
		{desc: "validate YAML syntax error", args: []string{"validate", "--config", syntax}, wantCode: 2, wantOut: syntax + ":3:10: YAML syntax error"},
		{desc: "validate invalid UTF-8", args: []string{"validate", "--config", badUTF8}, wantCode: 2, wantOut: badUTF8 + ":2:12: invalid UTF-8"},
		{desc: "validate control character", args: []string{"validate", "--config", ctrl}, wantCode: 2, wantOut: ctrl + ":2:12: control character U+0007"},
		{desc: "validate 10 MB without aliases", args: []string{"validate", "--config", big}, wantCode: 2, wantOut: fmt.Sprintf("%s:%d:33: retries", big, bigLines+2), notOut: "alias"},
		{desc: "validate missing flag", args: []string{"validate"}, wantCode: 2, wantOut: "--config FILE is required"},
		{desc: "validate missing file", args: []string{"validate", "--config", filepath.Join(dir, "nope.yaml")}, wantCode: 2, wantOut: "nope.yaml"},
		{desc: "run bad config starts nothing", args: []string{"run", "--config", bad}, wantCode: 2, wantOut: bad + ":3:"},
		{desc: "run bad flag", args: []string{"run", "--config", good, "--log-level", "loud"}, wantCode: 2, wantOut: "--log-level"},
		{desc: "run bad listen flag", args: []string{"run", "--config", good, "--proxy-listen", "nope"}, wantCode: 2, wantOut: "listen address"},
		{desc: "stray argument", args: []string{"validate", "--config", good, "extra"}, wantCode: 2, wantOut: `unexpected argument "extra"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tc.args, &out, &out, noEnv)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("code %d (want %d), output:\n%s\nwant it to contain %q", code, tc.wantCode, out.String(), tc.wantOut)
			}
			if tc.notOut != "" && strings.Contains(out.String(), tc.notOut) {
				t.Fatalf("output:\n%s\nwant no %q in it", out.String(), tc.notOut)
			}
		})
	}
}

// The built-in demo configuration must always parse and build.
func TestDemoConfigBuilds(t *testing.T) {
	env := func(k string) (string, bool) {
		return map[string]string{"DEMO_BACKEND_A": "127.0.0.1:1", "DEMO_BACKEND_B": "127.0.0.1:2"}[k], strings.HasPrefix(k, "DEMO_")
	}
	var out bytes.Buffer
	f := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(f, demoConfig, 0o600)
	if code := run([]string{"validate", "--config", f}, &out, &out, env); code != 0 {
		t.Fatalf("demo config: %s", out.String())
	}
}
