package config

// The field checks of the file, exported so that other writers of the same
// entities (the admin API) accept exactly what the file accepts.

// ValidHostname reports whether s is hostname-like: dot-separated labels of
// letters, digits, '-' and '_'.
func ValidHostname(s string) bool { return validHostname(s) }

// CheckToken checks an HTTP token (a method, a header or cookie name).
func CheckToken(s string) error { return checkToken(s) }

// CheckUpstreamName checks an upstream name (hostname-like, not shaped as
// a UUID).
func CheckUpstreamName(s string) error { return checkUpstreamName(s) }

// CheckName checks a service or route name (Kong's character set, not
// shaped as a UUID).
func CheckName(s string) error { return checkName(s) }

// ParsePort parses a decimal port in min..65535.
func ParsePort(s string, min int) (int, error) { return parsePort(s, min) }

// NormalizeHost checks a host name or IP address and returns it
// lower-cased, IPs canonical.
func NormalizeHost(h string) (string, error) { return normalizeHost(h) }

// NormalizeServiceHost checks a service's host (an upstream name, a host
// name kept as written, or an IP address made canonical).
func NormalizeServiceHost(h string) (string, error) { return normalizeServiceHost(h) }

// NormalizeRouteHost checks a route's host pattern (wildcards at either
// end, optional port) and returns it lower-cased.
func NormalizeRouteHost(s string) (string, error) { return normalizeRouteHost(s) }

// DefaultPathHandling is a route's path_handling when none is given.
const DefaultPathHandling = "v0"

// PathHandlings are the values of a route's path_handling, as in Kong.
func PathHandlings() []string { return []string{"v0", "v1"} }

// HashFallbackProblem returns why hash_fallback may not go with hash_on
// (Kong's rules), or "" when the pair is valid.
func HashFallbackProblem(on, fallback string) string {
	switch {
	case on == "none" && fallback != "none":
		return "must be none when hash_on is none"
	case on == "cookie" && fallback != "none":
		return "must be none when hash_on is cookie"
	case fallback != "none" && fallback == on:
		return "must differ from hash_on (both are " + on + ")"
	}
	return ""
}

// HashInputs are the settings that name what an upstream hashes on.
type HashInputs struct {
	Header, Cookie, QueryArg, URICapture string
}

// Missing reports whether hashing on input (a hash_on value) needs the
// setting hash_on_<input> and it is empty.
func (h HashInputs) Missing(input string) bool {
	switch input {
	case "header":
		return h.Header == ""
	case "cookie":
		return h.Cookie == ""
	case "query_arg":
		return h.QueryArg == ""
	case "uri_capture":
		return h.URICapture == ""
	}
	return false
}
