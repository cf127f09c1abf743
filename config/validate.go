package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ValidHostname reports whether s is hostname-like: dot-separated labels
// of 1..63 letters, digits, '-' and '_', not starting or ending with '-',
// at most 253 bytes in all.
func ValidHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CheckUpstreamName checks an upstream name, which is hostname-like so
// that a service's host can name it.
func CheckUpstreamName(s string) error {
	if !ValidHostname(s) {
		return fmt.Errorf("%s is not a valid upstream name (dot-separated labels of letters, digits, '-' and '_')", quote(s))
	}
	return checkNotUUID(s)
}

// checkNotUUID refuses a name written as a UUID: the admin API takes such
// a key for an id, so the entity could not be reached by its name (Kong
// refuses them too).
func checkNotUUID(s string) error {
	if IsUUID(s) {
		return fmt.Errorf("%s is not a valid name: it has the form of a UUID, which is taken for an id", quote(s))
	}
	return nil
}

// IsUUID reports whether s is written as a UUID (any version, any case):
// 8-4-4-4-12 hexadecimal digits. Such a string is taken for an entity's id,
// so it cannot be a name.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// CheckName checks a service or route name: 1..128 letters, digits and
// '.', '_', '~', '-' (Kong's set, ASCII only).
func CheckName(s string) error {
	ok := s != "" && len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '~' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%s is not a valid name (1 to 128 letters, digits, '.', '_', '~' or '-')", quote(s))
	}
	return checkNotUUID(s)
}

// isTchar reports whether c may appear in an HTTP token (RFC 9110).
func isTchar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// CheckToken checks that s is an HTTP token (a method or header name, a
// cookie name).
func CheckToken(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return fmt.Errorf("%s is not a valid token (invalid character %q)", quote(s), s[i])
		}
	}
	return nil
}

// checkNonEmpty refuses "".
func checkNonEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// checkPath checks a URL path: it starts with '/' and holds no space or
// control character.
func checkPath(s string) error {
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf("%s must start with '/'", quote(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return fmt.Errorf("%s holds a space or control character", quote(s))
		}
	}
	return nil
}

// ParsePort parses a decimal port in min..MaxPort.
func ParsePort(s string, min int) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	if len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port %s", quote(s))
	}
	p, _ := strconv.Atoi(s)
	if p < min || p > MaxPort {
		return 0, fmt.Errorf("port %d is out of range %d..%d", p, min, MaxPort)
	}
	return p, nil
}

// NormalizeHost checks a host name or IP address (IPv6 without brackets)
// and returns it lower-cased, IPs in canonical form.
func NormalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("missing host")
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		return addr.String(), nil
	}
	if !ValidHostname(h) {
		return "", fmt.Errorf("invalid host %s (expected a host name or an IP address)", quote(h))
	}
	return strings.ToLower(h), nil
}

// NormalizeServiceHost checks a service's host: an upstream name or a host
// name (returned as written, since upstream names are matched exactly), or
// an IP address (IPv6 with or without brackets; returned canonical,
// without brackets).
func NormalizeServiceHost(h string) (string, error) {
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		addr, err := netip.ParseAddr(inner)
		if !ok || err != nil || !addr.Is6() {
			return "", fmt.Errorf("%s: invalid IPv6 address", quote(h))
		}
		return addr.String(), nil
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		return addr.String(), nil
	}
	if !ValidHostname(h) {
		return "", fmt.Errorf("invalid host %s (expected an upstream name, a host name or an IP address)", quote(h))
	}
	return h, nil
}

// checkHostPort checks "host:port" with a port in 1..65535, as
// normalizeHostPort does.
func checkHostPort(s string) error {
	_, err := normalizeHostPort(s, 1, false)
	return err
}

// normalizeHostPort checks "host:port" (IPv6 in brackets) with a port in
// minPort..65535 and returns it normalised. With emptyHost an empty host
// (":8000") is allowed.
func normalizeHostPort(s string, minPort int, emptyHost bool) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%s is not host:port (such as 10.0.0.1:8080 or [::1]:8080)", quote(s))
	}
	if _, err := ParsePort(port, minPort); err != nil {
		return "", fmt.Errorf("%s: %v", quote(s), err)
	}
	port = strings.TrimLeft(port, "0")
	if port == "" {
		port = "0"
	}
	if host == "" && emptyHost {
		return ":" + port, nil
	}
	if host, err = NormalizeHost(host); err != nil {
		return "", fmt.Errorf("%s: %v", quote(s), err)
	}
	return net.JoinHostPort(host, port), nil
}

// NormalizeRouteHost checks a route's host: a host name or IP address,
// optionally with one wildcard label at either end ("*.example.com",
// "example.*"), optionally followed by ":port". It returns it lower-cased.
func NormalizeRouteHost(s string) (string, error) {
	s = strings.ToLower(s)
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("%s: missing ']'", quote(s))
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() {
			return "", fmt.Errorf("%s: invalid IPv6 address", quote(s))
		}
		out := "[" + addr.String() + "]"
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", fmt.Errorf("%s: unexpected %s after ']'", quote(s), quote(rest))
			}
			p, err := ParsePort(rest[1:], 1)
			if err != nil {
				return "", fmt.Errorf("%s: %v", quote(s), err)
			}
			out += ":" + strconv.Itoa(p)
		}
		return out, nil
	}
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host = s[:i]
		p, err := ParsePort(s[i+1:], 1)
		if err != nil {
			return "", fmt.Errorf("%s: %v", quote(s), err)
		}
		port = ":" + strconv.Itoa(p)
	}
	if strings.Contains(host, ":") {
		return "", fmt.Errorf("%s: IPv6 addresses must be written in brackets", quote(s))
	}
	name := host
	switch {
	case strings.HasPrefix(host, "*."):
		name = host[2:]
	case strings.HasSuffix(host, ".*"):
		name = host[:len(host)-2]
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("%s: a wildcard must be a whole label at the start (*.example.com) or the end (example.*), and only one", quote(s))
	}
	if _, err := netip.ParseAddr(name); err != nil && !ValidHostname(name) {
		return "", fmt.Errorf("%s is not a valid host", quote(s))
	}
	return host + port, nil
}

// parseSize parses "1048576", "512KB", "10mb", "1GB", "100B" into bytes
// (1024-based units).
func parseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	bad := fmt.Errorf("invalid size %s (expected a number of bytes, optionally followed by B, KB, MB or GB)", quote(s))
	if num == "" {
		return 0, bad
	}
	var mult int64
	switch unit {
	case "", "b":
		mult = 1
	case "kb":
		mult = 1 << 10
	case "mb":
		mult = 1 << 20
	case "gb":
		mult = 1 << 30
	default:
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("size %s is too large", quote(s))
	}
	return n * mult, nil
}
