package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An https service verifies its target's certificate unless the file says
// tls_verify: false: a target with a certificate from an unknown CA gets
// no traffic by default (Outrigger keeps Go's verifying default where
// Kong's is off; an https target is never trusted silently).
func TestHTTPSServiceVerifiesByDefault(t *testing.T) {
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
	defer be.Close()
	addr := strings.TrimPrefix(be.URL, "https://")
	for _, tc := range []struct {
		desc   string
		extra  string
		status int
	}{
		{desc: "default verifies", status: http.StatusBadGateway},
		{desc: "tls_verify: true", extra: "tls_verify: true, ", status: http.StatusBadGateway},
		{desc: "tls_verify: false", extra: "tls_verify: false, ", status: http.StatusOK},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, proxyURL, _ := testGateway(t, fmt.Sprintf(`
upstreams:
  - {name: u, targets: [{target: %q}]}
services:
  - {name: s, host: u, protocol: https, %sretries: 0, routes: [{name: r, paths: [/]}]}
`, addr, tc.extra))
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Get(proxyURL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tc.status)
			}
		})
	}
}
