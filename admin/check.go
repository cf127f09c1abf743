package admin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// Field checks in the decoders' shape (normalised value, or why not). The
// rules are the configuration file's (package config), so what the API
// accepts also builds; only the wording of a few is Kong's.

// keep turns a config check into a decoder check that keeps the value.
func keep(check func(string) error) func(string) (string, error) {
	return func(s string) (string, error) { return s, check(s) }
}

// defaultTargetPort is Kong's port for a target given without one.
const defaultTargetPort = 8000

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
	p, err := config.ParsePort(port, config.MinPort)
	if err != nil {
		return "", fmt.Errorf("invalid target %q: %v", s, err)
	}
	h, err := config.NormalizeHost(host)
	if err != nil {
		return "", fmt.Errorf("invalid target %q: %v", s, err)
	}
	return net.JoinHostPort(h, strconv.Itoa(p)), nil
}

// checkRoutePath is config.CheckRoutePath in Kong's words.
func checkRoutePath(s string) (string, error) {
	if !strings.HasPrefix(s, "~") {
		if _, err := checkPath(s); err != nil {
			return "", fmt.Errorf("%v (or '~' for a regular expression)", err)
		}
		return s, nil
	}
	var re *config.RegexError
	if err := config.CheckRoutePath(s); errors.As(err, &re) {
		return "", fmt.Errorf("invalid regex: %v", re.Err)
	} else if err != nil {
		return "", err
	}
	return s, nil
}

// checkSNI checks an optional TLS server name.
func checkSNI(s string) (string, error) {
	if s != "" && !config.ValidHostname(s) {
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
