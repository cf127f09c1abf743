package config

// The field checks of the file, exported so that other writers of the same
// entities (the admin API) accept exactly what the file accepts.

// ValidHostname reports whether s is hostname-like: dot-separated labels of
// letters, digits, '-' and '_'.
func ValidHostname(s string) bool { return validHostname(s) }

// CheckToken checks an HTTP token (a method, a header or cookie name).
func CheckToken(s string) error { return checkToken(s) }

// CheckUpstreamName checks an upstream name (hostname-like).
func CheckUpstreamName(s string) error { return checkUpstreamName(s) }

// CheckName checks a service or route name (Kong's character set).
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
