package h1

// Byte classes, one bit each, looked up in a 256-entry table.
const (
	cToken  = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue              // field-vchar, SP, HTAB, obs-text (RFC 9110 §5.5)
	cTarget             // request-target bytes accepted: 0x21-0x7E except '#'
	cHost               // bytes of a Host value: reg-name, IP literal, port
	cScheme             // ALPHA DIGIT "+" "-" "." (RFC 3986 §3.1)
	cQText              // qdtext of a quoted-string (RFC 9110 §5.6.4)
)

// classes is read-only after initialisation.
var classes = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		if alnum || indexByte("!#$%&'*+-.^_`|~", b) {
			t[c] |= cToken
		}
		if b == '\t' || b >= 0x20 && b != 0x7f {
			t[c] |= cValue
		}
		if b >= 0x21 && b <= 0x7e && b != '#' {
			t[c] |= cTarget
		}
		if alnum || indexByte("-._~%!$&'()*+,;=:[]", b) {
			t[c] |= cHost
		}
		if alnum || b == '+' || b == '-' || b == '.' {
			t[c] |= cScheme
		}
		if b == '\t' || b == ' ' || b == 0x21 || b >= 0x23 && b <= 0x5b || b >= 0x5d && b <= 0x7e || b >= 0x80 {
			t[c] |= cQText
		}
	}
	return t
}()

func indexByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if classes[c]&cToken == 0 {
			return false
		}
	}
	return true
}

// ValidFieldName reports whether name is a non-empty token, the only form a
// field name may take. The writer helpers do not check what they append;
// an engine validates names and values that do not come from a parse
// (configuration, policy) with this and ValidFieldValue.
func ValidFieldName(name []byte) bool { return isToken(name) }

// ValidFieldValue reports whether v may be written as a field value: only
// field-vchar, SP, HTAB and obs-text, and no leading or trailing SP/HTAB.
func ValidFieldValue(v []byte) bool {
	for _, c := range v {
		if classes[c]&cValue == 0 {
			return false
		}
	}
	return len(v) == 0 || !isOWS(v[0]) && !isOWS(v[len(v)-1])
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals lower, an ASCII lower-case string,
// ignoring ASCII case in b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes compares two byte strings ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nextListElement splits the first element off a comma-separated list
// (RFC 9110 §5.6.1), trimmed of OWS. ok is false when list is exhausted;
// a trailing comma yields no last empty element (callers that must refuse
// empty elements check the ends of the list themselves).
func nextListElement(list []byte) (elem, rest []byte, ok bool) {
	if len(list) == 0 {
		return nil, nil, false
	}
	i := 0
	for i < len(list) && list[i] != ',' {
		i++
	}
	elem = trimOWS(list[:i])
	if i < len(list) {
		i++ // the comma
	}
	return elem, list[i:], true
}
