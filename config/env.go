package config

import (
	"fmt"
	"strings"
)

// expand replaces ${VAR} and ${VAR:-default} references in s with values
// from lookup, and "$$" with a literal "$". A '$' followed by anything
// else is kept as is, so regular expressions ending in '$' need no
// escaping. ${VAR:-default} uses default when VAR is unset or empty, as in
// the shell; the default is literal text up to the first '}'. A nil
// lookup knows no variable.
//
// changed reports whether s held a reference or an escape.
func expand(s string, lookup func(string) (string, bool)) (out string, changed bool, err error) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) || (s[i+1] != '$' && s[i+1] != '{') {
			b.WriteByte(c)
			i++
			continue
		}
		changed = true
		if s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", true, fmt.Errorf("unterminated variable reference %q (missing '}')", s[i:])
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end + 1
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			return "", true, fmt.Errorf("invalid variable reference ${%s}: expected ${NAME} or ${NAME:-default}", ref)
		}
		v, ok := "", false
		if lookup != nil {
			v, ok = lookup(name)
		}
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			return "", true, fmt.Errorf("environment variable %s is not set (use ${%s:-default} to give a default)", name, name)
		}
		b.WriteString(v)
	}
	return b.String(), changed, nil
}

// validVarName reports whether s is a shell-style variable name.
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
