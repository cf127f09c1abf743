package itest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wantUpstream fetches path through g and fails unless the origin (a
// default backend) received want as its request URI.
func wantUpstream(t *testing.T, c *http.Client, g *gateway, path, want string) {
	t.Helper()
	status, _, body := get(t, c, g.url(path))
	if status != http.StatusOK || !strings.HasSuffix(body, " GET "+want) {
		t.Fatalf("GET %s: %d %q, want the origin to receive %s", path, status, body, want)
	}
}

// TestPathHandlingSeed000: the IRIS load-balancing tutorial, set up
// through the admin API as it does (service path /api/atelier, route
// /api/atelier): its request to /api/atelier/ ("note the slash at the
// end") reaches the origin as /api/atelier/, as Kong sends it. A route
// given path_handling v1 through the admin API joins the v1 way.
func TestPathHandlingSeed000(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	g := startGateway(t, "")
	api := adAdmin(g)
	c := newClient()

	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams", "name", "myupstream")
	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/myupstream/targets", "target", a.Addr, "weight", "100")
	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/myupstream/targets", "target", b.Addr, "weight", "100")
	svc := api.form(t, http.StatusCreated, http.MethodPost, "/services", "name", "myservice", "host", "myupstream", "path", "/api/atelier", "protocol", "http")
	rt := api.form(t, http.StatusCreated, http.MethodPost, "/routes", "paths[]", "/api/atelier", "protocols[]", "http", "service.id", svc.str("id"))

	for _, tc := range []struct{ desc, req, want string }{
		{desc: "the tutorial's request keeps its trailing slash", req: "/api/atelier/", want: "/api/atelier/"},
		{desc: "and its query string", req: "/api/atelier/?a=1&b=%2F+x", want: "/api/atelier/?a=1&b=%2F+x"},
		{desc: "without the slash, the service path alone", req: "/api/atelier", want: "/api/atelier"},
		{desc: "a sub-path", req: "/api/atelier/v1/namespaces/", want: "/api/atelier/v1/namespaces/"},
	} {
		t.Run(tc.desc, func(t *testing.T) { wantUpstream(t, c, g, tc.req, tc.want) })
	}

	t.Run("path_handling v1 set through the admin API", func(t *testing.T) {
		if got := rt.str("path_handling"); got != "v0" {
			t.Fatalf("the tutorial's route has path_handling %q, want the default v0", got)
		}
		r := api.form(t, http.StatusCreated, http.MethodPost, "/services/myservice/routes", "name", "glued", "paths[]", "/glued/", "path_handling", "v1")
		if got := r.str("path_handling"); got != "v1" {
			t.Fatalf("path_handling %q, want v1", got)
		}
		wantUpstream(t, c, g, "/glued/x", "/api/atelierx")
		api.json(t, http.StatusOK, http.MethodPatch, "/routes/glued", map[string]any{"path_handling": "v0"})
		wantUpstream(t, c, g, "/glued/x", "/api/atelier/x")
	})

	t.Run("an invalid path_handling is a JSON 400 naming the field", func(t *testing.T) {
		r := api.json(t, http.StatusBadRequest, http.MethodPatch, "/routes/glued", map[string]any{"path_handling": "v2"})
		if f, _ := r.fields()["path_handling"].(string); !strings.Contains(f, "expected one of: v0, v1") {
			t.Fatalf("fields %v, want path_handling: expected one of: v0, v1 (%s)", r.fields(), r.raw)
		}
		if r.str("message") == "" {
			t.Fatalf("no message: %s", r.raw)
		}
		wantUpstream(t, c, g, "/glued/x", "/api/atelier/x")
	})
}

// TestPathHandlingFile: path_handling in the configuration file, per
// route, and a bad value refused at its position.
func TestPathHandlingFile(t *testing.T) {
	a := startBackend(t, "a", nil)
	g := startGateway(t, fmt.Sprintf(`
services:
  - name: s
    url: http://%s/s
    routes:
      - {name: default, paths: [/r/]}
      - {name: old, paths: [/old/], path_handling: v1}
      - {name: plain, paths: [/plain/], path_handling: v0}
`, a.Addr))
	c := newClient()
	for _, tc := range []struct{ desc, req, want string }{
		{desc: "default v0 adds the slash", req: "/r/x?q=1", want: "/s/x?q=1"},
		{desc: "default v0 keeps the trailing slash", req: "/r/", want: "/s/"},
		{desc: "v1 glues the rest on", req: "/old/x?q=1", want: "/sx?q=1"},
		{desc: "v1 on the bare prefix", req: "/old/", want: "/s"},
		{desc: "explicit v0", req: "/plain/x", want: "/s/x"},
	} {
		t.Run(tc.desc, func(t *testing.T) { wantUpstream(t, c, g, tc.req, tc.want) })
	}

	t.Run("a bad value names FILE:LINE:COL", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		body := "services:\n  - name: s\n    url: http://127.0.0.1:1\n    routes:\n      - name: r\n        paths: [/]\n        path_handling: v3\n"
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary, "validate", "--config", path).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("err %v, want exit 2\n%s", err, out)
		}
		want := path + `:7:24: path_handling: "v3" is not valid; expected one of: v0, v1`
		if !strings.Contains(string(out), want) {
			t.Fatalf("output %q does not contain %q", out, want)
		}
	})
}
