// Package portal is the admin listener's web portal: static HTML, CSS and
// JavaScript embedded in the binary (no build step, no CDN: it works on a
// machine without internet), served under Prefix.
//
// Contract:
//   - The files hold no data and no secret, so they are served without the
//     admin token; everything the page shows or changes goes through the
//     admin API with the token in a request header (kept in the browser's
//     session storage, never in a URL or a cookie). The API refuses writes
//     without that header, so another origin cannot forge one (CSRF).
//   - The only endpoint made for the portal is the read-only
//     GET /stats/stream; every write is an ordinary admin API call with
//     its validation.
//   - Answers carry a Content-Security-Policy that allows only this
//     origin's scripts, styles and connections, and no framing.
//   - Nothing here is mutable state.
package portal

import (
	"embed"
	"io/fs"
	"net/http"
)

// Prefix is the path the portal is served under.
const Prefix = "/portal/"

//go:embed static
var files embed.FS

// csp allows this origin only: no inline script, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler serves the portal's files under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic("portal: " + err.Error()) // the embed always holds static
	}
	fsrv := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate, so a new binary's portal replaces the old one.
		h.Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
