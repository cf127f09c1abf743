package itest

// h2spec, the HTTP/2 conformance suite, against the proxy listener.

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// h2specBinary is $H2SPEC (what `make test` sets, after `make h2spec`), or
// the newest install in the cache `make h2spec` uses.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("H2SPEC"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("H2SPEC=%s: %v (make h2spec installs it)", p, err)
		}
		return p
	}
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".cache", "outrigger", "h2spec-*", "h2spec"))
	if len(found) == 0 {
		t.Skip("h2spec is not installed: run `make h2spec` (make test does) or set H2SPEC")
	}
	return found[len(found)-1]
}

// h2specListener is one way of reaching the proxy listener over HTTP/2.
type h2specListener struct {
	name string
	// setup returns the gateway's options (its ProxyAddr is the listener
	// under test) and what its configuration needs besides the services.
	setup func(t *testing.T) (gatewayOpts, string)
	// args are h2spec's connection flags besides host and port.
	args []string
}

func h2specListeners() []h2specListener {
	return []h2specListener{
		{name: "h2c", setup: func(*testing.T) (gatewayOpts, string) { return h2cOpts(), "" }},
		// TLS with ALPN h2, the certificate the default one (no snis).
		{name: "tls", args: []string{"-t", "-k"}, setup: func(t *testing.T) (gatewayOpts, string) {
			ca := certtest.NewCA(t, "h2spec CA")
			return gatewayOpts{Listen: func(p string, _ []string) string { return fmt.Sprintf("%q", p+" ssl http2") }},
				"certificates:\n" + inlineCert(ca.Server(t, "h2spec.test"))
		}},
	}
}

// TestH2Spec runs every h2spec case (generic, HPACK and RFC 7540) against
// the proxy listener, proxying to an HTTP/1.1 upstream, and fails on any
// case that does not pass (skipped ones included).
func TestH2Spec(t *testing.T) {
	bin := h2specBinary(t)
	be := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s\n", r.Method, r.URL.Path)
	}))
	for _, l := range h2specListeners() {
		t.Run(l.name, func(t *testing.T) {
			opts, cfg := l.setup(t)
			g := startGatewayOpts(t, opts, cfg+fmt.Sprintf(`
services:
  - {name: s, url: "http://%s", routes: [{name: r, paths: [/]}]}
`, be.Addr))
			runH2Spec(t, bin, g.ProxyAddr, l.args)
		})
	}
}

// runH2Spec runs h2spec against addr (bounded to five minutes) and fails
// the test on each case that fails or is skipped.
func runH2Spec(t *testing.T, bin, addr string, args []string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port, "-o", "5", "-j", report}, args...)...)
	out, runErr := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("h2spec did not finish in 5 minutes\n%s", out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report (%v): %v\n%s", runErr, err, out)
	}
	var suites junitSuites
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var total, failed, skipped int
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			total++
			id := c.Package + " " + c.Name
			switch {
			case c.Failure != nil || c.Error != nil:
				failed++
				msg := ""
				if c.Failure != nil {
					msg = c.Failure.Text
				} else {
					msg = c.Error.Text
				}
				t.Errorf("h2spec %s: failed\n%s", id, strings.TrimSpace(msg))
			case c.Skipped != nil:
				skipped++
				t.Errorf("h2spec %s: skipped: %s", id, strings.TrimSpace(c.Skipped.Msg+" "+c.Skipped.Text))
			}
		}
	}
	t.Logf("h2spec: %d cases, %d passed, %d failed, %d skipped", total, total-failed-skipped, failed, skipped)
	if total == 0 {
		t.Fatalf("h2spec ran no case (%v)\n%s", runErr, out)
	}
	if failed == 0 && runErr != nil {
		t.Fatalf("h2spec: %v with no failed case\n%s", runErr, out)
	}
}

// junitSuites is the part of h2spec's JUnit report the test reads.
type junitSuites struct {
	Suites []struct {
		Cases []struct {
			Package string        `xml:"package,attr"`
			Name    string        `xml:"classname,attr"`
			Failure *junitMessage `xml:"failure"`
			Error   *junitMessage `xml:"error"`
			Skipped *junitMessage `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitMessage struct {
	Text string `xml:",chardata"`
	Msg  string `xml:"message,attr"`
}
