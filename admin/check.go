package admin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Field checks. They follow the configuration file's rules (package
// config), so what the API accepts also builds.

// defaultTargetPort is Kong's port for a target given without one.
const defaultTargetPort = 8000

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isHostname reports whether s is dot-separated labels of 1..63 letters,
// digits, '-' and '_' (not starting or ending with '-'), 253 bytes at most.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// checkUpstreamName: upstream names are hostname-like, so that a
// service's host can name them.
func checkUpstreamName(s string) (string, error) {
	if !isHostname(s) {
		return "", errors.New("invalid upstream name: dot-separated labels of letters, digits, '-' and '_'")
	}
	return s, nil
}

// checkName checks a service or route name: 1..128 letters, digits and
// '.', '_', '~', '-' (Kong's set).
func checkName(s string) (string, error) {
	ok := s != "" && len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '~' || c == '-'
	}
	if !ok {
		return "", errors.New("invalid value: 1 to 128 letters, digits, '.', '_', '~' or '-'")
	}
	return s, nil
}

// checkToken checks an HTTP token (header or cookie name, method).
func checkToken(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

func tokenCheck(s string) (string, error) { return s, checkToken(s) }

func nonEmpty(s string) (string, error) {
	if s == "" {
		return "", errors.New("must not be empty")
	}
	return s, nil
}

// checkPath checks a URL path: it starts with '/' and holds no space or
// control character.
func checkPath(s string) (string, error) {
	if !strings.HasPrefix(s, "/") {
		return "", errors.New("should start with: /")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return "", errors.New("must not contain spaces or control characters")
		}
	}
	return s, nil
}

// normalizeHost checks a host name or IP address (IPv6 without brackets)
// and returns it lower-cased, IPs canonical.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("missing host")
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		return addr.String(), nil
	}
	if !isHostname(h) {
		return "", fmt.Errorf("invalid host %q (expected a host name or an IP address)", h)
	}
	return strings.ToLower(h), nil
}

// normalizeTarget checks a target, "host:port" or "host" (port 8000, as
// Kong), IPv6 in brackets, and returns it normalised.
func normalizeTarget(s string) (string, error) {
	host, port := s, strconv.Itoa(defaultTargetPort)
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("invalid target %q: missing ']'", s)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", fmt.Errorf("invalid target %q", s)
			}
			port = p
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", fmt.Errorf("invalid target %q: invalid IPv6 address", s)
		}
	case strings.Count(s, ":") > 1:
		return "", fmt.Errorf("invalid target %q: write IPv6 addresses in brackets ([::1]:8080)", s)
	case strings.Contains(s, ":"):
		host, port, _ = strings.Cut(s, ":")
	}
	p, err := parsePort(port)
	if err != nil {
		return "", fmt.Errorf("invalid target %q: %v", s, err)
	}
	h, err := normalizeHost(host)
	if err != nil {
		return "", fmt.Errorf("invalid target %q: %v", s, err)
	}
	return net.JoinHostPort(h, strconv.Itoa(p)), nil
}

// parsePort parses a decimal port in 1..65535.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1..65535", p)
	}
	return p, nil
}

// normalizeServiceHost checks a service's host: an upstream name or host
// name (kept as written: upstream names match exactly), or an IP address
// (canonical, IPv6 without brackets).
func normalizeServiceHost(h string) (string, error) {
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		addr, err := netip.ParseAddr(inner)
		if !ok || err != nil || !addr.Is6() {
			return "", fmt.Errorf("invalid IPv6 address %q", h)
		}
		return addr.String(), nil
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		return addr.String(), nil
	}
	if !isHostname(h) {
		return "", fmt.Errorf("invalid host %q (expected an upstream name, a host name or an IP address)", h)
	}
	return h, nil
}

// serviceURL is a service's url shorthand, split.
type serviceURL struct {
	protocol, host, path string
	port                 int
}

// parseServiceURL checks and splits http(s)://host[:port][/path].
func parseServiceURL(s string) (serviceURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return serviceURL{}, fmt.Errorf("invalid URL %q", s)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return serviceURL{}, errors.New("scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return serviceURL{}, errors.New("missing host (expected http://host:port/path)")
	case u.User != nil:
		return serviceURL{}, errors.New("user information is not supported")
	case u.RawQuery != "" || u.ForceQuery:
		return serviceURL{}, errors.New("a query string is not supported")
	case u.Fragment != "":
		return serviceURL{}, errors.New("a fragment is not supported")
	}
	out := serviceURL{protocol: scheme, port: defaultServicePort(scheme)}
	if out.host, err = normalizeServiceHost(u.Hostname()); err != nil {
		return serviceURL{}, err
	}
	if p := u.Port(); p != "" {
		if out.port, err = parsePort(p); err != nil {
			return serviceURL{}, err
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return serviceURL{}, errors.New("empty port")
	}
	if path := u.EscapedPath(); path != "" {
		if out.path, err = checkPath(path); err != nil {
			return serviceURL{}, err
		}
	}
	return out, nil
}

func defaultServicePort(protocol string) int {
	if protocol == "https" {
		return 443
	}
	return 80
}

// normalizeRouteHost checks a route's host: a host name or IP address,
// with at most one wildcard label at either end ("*.example.com",
// "example.*") and an optional ":port"; lower-cased.
func normalizeRouteHost(s string) (string, error) {
	s = strings.ToLower(s)
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", errors.New("missing ']'")
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() {
			return "", errors.New("invalid IPv6 address")
		}
		out := "[" + addr.String() + "]"
		if rest := s[end+1:]; rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", fmt.Errorf("unexpected %q after ']'", rest)
			}
			n, err := parsePort(p)
			if err != nil {
				return "", err
			}
			out += ":" + strconv.Itoa(n)
		}
		return out, nil
	}
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		n, err := parsePort(s[i+1:])
		if err != nil {
			return "", err
		}
		port = ":" + strconv.Itoa(n)
	}
	if strings.Contains(host, ":") {
		return "", errors.New("IPv6 addresses must be written in brackets")
	}
	name := host
	switch {
	case strings.HasPrefix(host, "*."):
		name = host[2:]
	case strings.HasSuffix(host, ".*"):
		name = host[:len(host)-2]
	}
	if strings.Contains(name, "*") {
		return "", errors.New("a wildcard must be a whole label at the start (*.example.com) or the end (example.*), and only one")
	}
	if _, err := netip.ParseAddr(name); err != nil && !isHostname(name) {
		return "", fmt.Errorf("invalid host %q", s)
	}
	return host + port, nil
}

// checkRoutePath checks a route path: a prefix starting with '/', or a
// regular expression after '~' that Go's regexp compiles.
func checkRoutePath(s string) (string, error) {
	if re, ok := strings.CutPrefix(s, "~"); ok {
		if re == "" {
			return "", errors.New("empty regular expression after '~'")
		}
		if _, err := regexp.Compile(re); err != nil {
			return "", fmt.Errorf("invalid regex: %v", err)
		}
		return s, nil
	}
	if _, err := checkPath(s); err != nil {
		return "", fmt.Errorf("%v (or '~' for a regular expression)", err)
	}
	return s, nil
}

// checkMethod upper-cases an HTTP method.
func checkMethod(s string) (string, error) {
	if err := checkToken(s); err != nil {
		return "", err
	}
	return strings.ToUpper(s), nil
}

// checkSNI checks an optional TLS server name.
func checkSNI(s string) (string, error) {
	if s != "" && !isHostname(s) {
		return "", fmt.Errorf("invalid server name %q", s)
	}
	return s, nil
}

// oneOf returns a check accepting only the given values.
func oneOf(allowed ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		for _, a := range allowed {
			if s == a {
				return s, nil
			}
		}
		return "", fmt.Errorf("expected one of: %s", strings.Join(allowed, ", "))
	}
}
