package admin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// Field checks. They follow the configuration file's rules (package
// config), so what the API accepts also builds.

// The checks the configuration file makes, shared.
func isHostname(s string) bool                      { return config.ValidHostname(s) }
func checkToken(s string) error                     { return config.CheckToken(s) }
func normalizeHost(h string) (string, error)        { return config.NormalizeHost(h) }
func normalizeServiceHost(h string) (string, error) { return config.NormalizeServiceHost(h) }
func normalizeRouteHost(s string) (string, error)   { return config.NormalizeRouteHost(s) }
func parsePort(s string) (int, error)               { return config.ParsePort(s, 1) }
func checkUpstreamName(s string) (string, error)    { return s, config.CheckUpstreamName(s) }
func checkName(s string) (string, error)            { return s, config.CheckName(s) }

// defaultTargetPort is Kong's port for a target given without one.
const defaultTargetPort = 8000

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
	case !slices.Contains(config.ServiceProtocols(), scheme):
		return serviceURL{}, errors.New("scheme must be one of " + strings.Join(config.ServiceProtocols(), ", "))
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
	return config.DefaultPort(protocol)
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
