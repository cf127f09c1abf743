// Package router implements Outrigger's request router: an immutable,
// allocation-free (in the common case) matcher from an HTTP request's method,
// Host header, path and headers to one of a fixed set of routes, following the
// semantics of Kong's "traditional_compatible" router.
//
// # Contract
//
// A [Router] is built once with [New] from a slice of [Route] values, which is
// copied (including its slices and header map; Route.Value is copied as is).
// After New returns, the Router is never modified and [Router.Match] is safe
// for concurrent use by any number of goroutines. Match returns a pointer to
// the Router's own copy of the winning route; callers must not modify it.
//
// A route matches a request when every attribute it sets matches; an unset
// (empty) attribute matches anything. A route must set at least one of Hosts,
// Paths, Methods or Headers.
//
//   - Hosts: "api.example.com" (exact), "*.example.com" (leading wildcard,
//     matches one or more labels in front of ".example.com", but not
//     "example.com" itself) or "example.*" (trailing wildcard, one or more
//     labels after "example."). Only one wildcard, in one of those two
//     positions, is allowed. A ":port" suffix ("api.example.com:8443",
//     "[::1]:8000") additionally requires the port in the request's Host
//     header to be equal; a host without a port matches any port, and a host
//     with a port never matches a Host header that carries none. Comparison
//     is case-insensitive and ignores a trailing dot on either side. IPv6
//     literals are written in brackets; an unbracketed route host such as
//     "::1" is normalised to "[::1]". An unbracketed IPv6 literal in the
//     request's Host header (invalid per RFC 9110) only reaches host-less
//     routes.
//   - Paths: a plain prefix ("/mock"), which is a byte-wise string prefix as
//     in Kong ("/mock" matches "/mock", "/mock/x" and "/mockery"), or a
//     regular expression marked by a leading "~" ("~/users/\d+$"), in Go
//     regexp syntax and implicitly anchored at the start of the path (but not
//     at its end). Plain paths must start with "/". Paths are compared
//     case-sensitively against the path exactly as given to Match: the caller
//     is responsible for any normalisation and must not include the query.
//   - Methods: matched exactly against the request method (methods given to
//     New are upper-cased).
//   - Headers: every listed header must be present in the request with at
//     least one value equal, ignoring case, to one of the accepted values.
//     Values are not split on commas. Header names are canonicalised with
//     [http.CanonicalHeaderKey] and looked up directly in the http.Header map,
//     so the request header must use canonical keys, as net/http provides
//     (or through [Headers] with [Router.MatchHeaders]).
//     "Host" cannot be used here; use Hosts.
//
// # Priority
//
// When several routes match, the winner is chosen by these rules, each one
// only breaking ties left by the previous ones:
//
//  1. Host specificity: a route matching through an exact host beats one
//     matching through a wildcard host, which beats a route without hosts.
//     The class is that of the route host which matched the request (a route
//     with both exact and wildcard hosts competes as exact for requests
//     matching an exact one). A host with a port is as specific as the same
//     host without one, and all wildcards are equally specific.
//  2. A regex path match beats a plain prefix match; regex matches are
//     ordered by RegexPriority, highest first.
//  3. Among prefix matches the longest matched prefix wins. A route without
//     paths counts as matching a prefix of length zero, so it is the last
//     resort for its host class.
//  4. The route with more header constraints wins, then a route with a method
//     constraint beats one without. (This also applies between regex routes
//     of equal RegexPriority.)
//  5. Definition order: the route given first to New wins. Within one route,
//     its first matching path wins.
//
// Rules 1-3 use the matched host and path, not the route as a whole: a route
// with paths "/a" and "/abc" competes with length 3 for "/abcd" and with length
// 2 for "/abd". A route whose method or header constraints fail is simply not
// a candidate, so lower-priority routes (shorter prefixes, wildcard hosts,
// host-less routes) are still considered.
//
// Differences from Kong's traditional_compatible router, chosen deliberately:
// Kong first orders routes by the number of attribute kinds they set and
// computes host specificity per route ("all hosts are plain") rather than per
// matched host; it also ranks header count above regex priority and compares
// a host's ":port" with the listener port rather than the Host header's port.
// Kong's regex header values ("~*" prefix) and SNI/source/destination
// attributes are not supported.
//
// # Strip path
//
// With StripPath, the matched prefix (prefix match) or the matched portion of
// the path (regex match, which starts at offset 0 because of the anchoring) is
// removed, and the remainder gets a leading "/" if it is empty or lacks one:
// "/mock" stripped from "/mock" gives "/", from "/mock/headers" "/headers" and
// from "/mockery" "/ery". When nothing is stripped (StripPath unset, a route
// without paths, or a zero-length regex match) Match.Path is the original
// path unchanged. PreserveHost is only carried for the caller.
//
// With StripPath, Match.Prefix and Match.Postfix also give the request path
// split at the end of the matched portion, unchanged (Kong's uri_prefix and
// uri_postfix), for callers combining it with a service path the way Kong's
// path_handling does: "/mock" on "/mockery" gives "/mock" and "ery". A route
// without paths has no prefix, and its postfix is the path without its
// leading "/" (Kong's convention). Without StripPath both are empty.
//
// # Performance
//
// Hosts are indexed in a map of exact hosts plus two maps for leading and
// trailing wildcards, probed once per dot in the request host; routes without
// hosts form one catch-all bucket. Within each bucket, plain prefixes live in
// a byte-wise compressed radix trie walked once along the request path
// (O(len(path))); candidates are then visited deepest first through links to
// the nearest ancestor holding routes, so fallbacks cost no second walk. Regex
// paths are kept in a rank-ordered list per bucket and are additionally
// indexed by their literal prefix (regexp's LiteralPrefix) in a second trie,
// so only regexes whose literal prefix fits the path are evaluated, still in
// priority order, and cheap method, header and port checks run before the
// regex. Match does not allocate for prefix matches when the Host header is
// already lower-case and the resulting path is a substring of the request
// path; regex matches with StripPath allocate.
package router

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Route is one routing rule. See the package documentation for the meaning
// of each attribute.
type Route struct {
	Name          string
	Hosts         []string            // "api.example.com", "*.example.com", "example.*", optional ":port"
	Paths         []string            // prefix "/mock" or regex "~/users/\d+$"
	Methods       []string            // empty = any
	Headers       map[string][]string // name -> accepted values (case-insensitive)
	StripPath     bool
	PreserveHost  bool
	RegexPriority int
	Value         any // opaque payload for the caller
}

// Match is the result of a successful [Router.Match].
type Match struct {
	Route *Route // the Router's copy of the matched route; do not modify
	Path  string // upstream path (after strip_path)
	Index int    // index of the route in the slice given to New
	// Prefix and Postfix split the request path at the end of the matched
	// portion; set only with StripPath (see the package documentation).
	Prefix, Postfix string
}

// Router is an immutable request router. Build it with [New].
type Router struct {
	routes   []Route
	exact    map[string]*bucket // normalised host -> bucket
	leading  map[string]*bucket // "*.example.com" keyed by ".example.com"
	trailing map[string]*bucket // "example.*" keyed by "example."
	any      *bucket            // routes without hosts; nil if none
}

// routeInfo holds the per-route constraints checked for every candidate.
type routeInfo struct {
	route   *Route
	index   int
	strip   bool
	methods []string
	headers []headerRule
}

type headerRule struct {
	name   string // canonical
	values []string
}

// matcher is one path of one route (or the empty path of a path-less route).
type matcher struct {
	info    *routeInfo
	pathIdx int
	regex   *regexp.Regexp // nil for a prefix
	lit     string         // literal prefix every regex match starts with
	prefix  string         // plain prefix ("" for path-less)
	plen    int            // len(prefix)
	rank    int            // global priority order for rules 2-5; lower wins
}

// ref places a matcher in a bucket under one host's port constraint.
type ref struct {
	m    *matcher
	port int // 0 = any port
}

type bucket struct {
	regexes []ref // all regex matchers, sorted by rank
	rroot   *node // regex matchers indexed by their literal prefix; nil if none
	root    *node // prefix trie; nil if the bucket has no prefix matchers
}

// maxRegexChain bounds the number of distinct regex literal prefixes of one
// request path merged on the stack; beyond it the plain list is scanned.
const maxRegexChain = 8

type node struct {
	label    string  // edge label from the parent
	firsts   string  // first byte of each child's label, parallel to children
	children []*node // child nodes
	refs     []ref   // matchers whose prefix (or regex literal prefix) ends here, by rank
	up       *node   // nearest proper ancestor with refs
}

type hostKind int

const (
	hostExact hostKind = iota
	hostLeading
	hostTrailing
)

// New validates routes and builds a Router. The routes slice is copied; the
// Index of a Match refers to it.
func New(routes []Route) (*Router, error) {
	r := &Router{
		routes:   make([]Route, len(routes)),
		exact:    map[string]*bucket{},
		leading:  map[string]*bucket{},
		trailing: map[string]*bucket{},
	}
	type placement struct {
		m    *matcher
		b    *bucket
		port int
	}
	var (
		matchers   []*matcher
		placements []placement
	)
	for i := range routes {
		rt := copyRoute(&routes[i])
		r.routes[i] = rt
		route := &r.routes[i]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("router: route %d (%q): %s", i, route.Name, fmt.Sprintf(format, args...))
		}
		if len(route.Hosts) == 0 && len(route.Paths) == 0 && len(route.Methods) == 0 && len(route.Headers) == 0 {
			return nil, fail("at least one of hosts, paths, methods or headers must be set")
		}
		info := &routeInfo{route: route, index: i, strip: route.StripPath}
		for j, m := range route.Methods {
			if m == "" || strings.ContainsAny(m, " \t\r\n") {
				return nil, fail("invalid method %q", m)
			}
			m = strings.ToUpper(m)
			route.Methods[j] = m
			info.methods = append(info.methods, m)
		}
		for name, values := range route.Headers {
			canon := http.CanonicalHeaderKey(name)
			if name == "" || strings.ContainsAny(name, " \t\r\n:") {
				return nil, fail("invalid header name %q", name)
			}
			if canon == "Host" {
				return nil, fail("header %q cannot be matched as a header; use hosts", name)
			}
			if len(values) == 0 {
				return nil, fail("header %q has no accepted values", name)
			}
			for _, hr := range info.headers {
				if hr.name == canon {
					return nil, fail("header %q listed twice", name)
				}
			}
			info.headers = append(info.headers, headerRule{name: canon, values: values})
		}
		slices.SortFunc(info.headers, func(a, b headerRule) int { return strings.Compare(a.name, b.name) })

		var ms []*matcher
		if len(route.Paths) == 0 {
			ms = append(ms, &matcher{info: info})
		}
		for j, p := range route.Paths {
			m := &matcher{info: info, pathIdx: j}
			switch {
			case strings.HasPrefix(p, "~"):
				expr := p[1:]
				if expr == "" {
					return nil, fail("empty regex path %q", p)
				}
				raw, err := regexp.Compile(expr)
				if err != nil {
					return nil, fail("invalid regex path %q: %v", p, err)
				}
				m.lit, _ = raw.LiteralPrefix()
				m.regex, err = regexp.Compile("^(?:" + expr + ")")
				if err != nil {
					return nil, fail("invalid regex path %q: %v", p, err)
				}
			case strings.HasPrefix(p, "/"):
				m.prefix, m.plen = p, len(p)
			default:
				return nil, fail("path %q must start with \"/\" (prefix) or \"~\" (regex)", p)
			}
			ms = append(ms, m)
		}
		matchers = append(matchers, ms...)

		var targets []placement
		if len(route.Hosts) == 0 {
			if r.any == nil {
				r.any = &bucket{}
			}
			targets = append(targets, placement{b: r.any})
		}
		for _, h := range route.Hosts {
			name, port, kind, err := parseHostPattern(h)
			if err != nil {
				return nil, fail("%v", err)
			}
			var idx map[string]*bucket
			switch kind {
			case hostExact:
				idx = r.exact
			case hostLeading:
				idx = r.leading
			default:
				idx = r.trailing
			}
			b := idx[name]
			if b == nil {
				b = &bucket{}
				idx[name] = b
			}
			targets = append(targets, placement{b: b, port: port})
		}
		for _, t := range targets {
			for _, m := range ms {
				placements = append(placements, placement{m: m, b: t.b, port: t.port})
			}
		}
	}

	slices.SortFunc(matchers, compareMatchers)
	for rank, m := range matchers {
		m.rank = rank
	}
	for _, p := range placements {
		rf := ref{m: p.m, port: p.port}
		if p.m.regex != nil {
			p.b.regexes = append(p.b.regexes, rf)
			if p.b.rroot == nil {
				p.b.rroot = &node{}
			}
			n := p.b.rroot.insert(p.m.lit)
			n.refs = append(n.refs, rf)
			continue
		}
		if p.b.root == nil {
			p.b.root = &node{}
		}
		n := p.b.root.insert(p.m.prefix)
		n.refs = append(n.refs, rf)
	}
	finish := func(b *bucket) {
		slices.SortStableFunc(b.regexes, byRank)
		if b.root != nil {
			b.root.finish(nil)
		}
		if b.rroot != nil {
			b.rroot.finish(nil)
		}
	}
	for _, idx := range []map[string]*bucket{r.exact, r.leading, r.trailing} {
		for _, b := range idx {
			finish(b)
		}
	}
	if r.any != nil {
		finish(r.any)
	}
	return r, nil
}

// copyRoute deep-copies the slices and map of a route.
func copyRoute(src *Route) Route {
	rt := *src
	rt.Hosts = slices.Clone(src.Hosts)
	rt.Paths = slices.Clone(src.Paths)
	rt.Methods = slices.Clone(src.Methods)
	if src.Headers != nil {
		rt.Headers = make(map[string][]string, len(src.Headers))
		for k, v := range src.Headers {
			rt.Headers[k] = slices.Clone(v)
		}
	}
	return rt
}

// compareMatchers orders matchers by priority rules 2-5.
func compareMatchers(a, b *matcher) int {
	ar, br := a.regex != nil, b.regex != nil
	if ar != br {
		if ar {
			return -1
		}
		return 1
	}
	if ar {
		if c := cmp.Compare(b.info.route.RegexPriority, a.info.route.RegexPriority); c != 0 {
			return c
		}
	} else if c := cmp.Compare(b.plen, a.plen); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.info.headers), len(a.info.headers)); c != 0 {
		return c
	}
	if am, bm := len(a.info.methods) > 0, len(b.info.methods) > 0; am != bm {
		if am {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.info.index, b.info.index); c != 0 {
		return c
	}
	return cmp.Compare(a.pathIdx, b.pathIdx)
}

func byRank(a, b ref) int { return cmp.Compare(a.m.rank, b.m.rank) }

// insert returns the node for prefix p, creating and splitting nodes as
// needed.
func (n *node) insert(p string) *node {
	for p != "" {
		i := strings.IndexByte(n.firsts, p[0])
		if i < 0 {
			c := &node{label: p}
			n.children = append(n.children, c)
			n.firsts += p[:1]
			return c
		}
		c := n.children[i]
		l := commonPrefixLen(c.label, p)
		if l < len(c.label) {
			mid := &node{label: c.label[:l], firsts: c.label[l : l+1], children: []*node{c}}
			c.label = c.label[l:]
			n.children[i] = mid
			c = mid
		}
		p = p[l:]
		n = c
	}
	return n
}

func commonPrefixLen(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// finish sorts the refs of every node and sets the up links.
func (n *node) finish(up *node) {
	n.up = up
	slices.SortStableFunc(n.refs, byRank)
	n.refs = slices.Clip(n.refs)
	if len(n.refs) > 0 {
		up = n
	}
	for _, c := range n.children {
		c.finish(up)
	}
}

// parseHostPattern normalises a route host and classifies it. For wildcards
// the returned name is the index key (".example.com" or "example.").
func parseHostPattern(h string) (name string, port int, kind hostKind, err error) {
	orig := h
	h = strings.ToLower(h)
	if h == "" {
		return "", 0, 0, errors.New("empty host")
	}
	if strings.ContainsAny(h, " \t\r\n/?#@") {
		return "", 0, 0, fmt.Errorf("invalid host %q", orig)
	}
	portStr := ""
	switch {
	case h[0] == '[':
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", 0, 0, fmt.Errorf("invalid host %q: missing \"]\"", orig)
		}
		rest := h[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", 0, 0, fmt.Errorf("invalid host %q", orig)
			}
			portStr = rest[1:]
			if portStr == "" {
				return "", 0, 0, fmt.Errorf("invalid host %q: empty port", orig)
			}
		}
		h = h[:end+1]
		if len(h) == 2 || strings.Contains(h, "*") {
			return "", 0, 0, fmt.Errorf("invalid host %q", orig)
		}
	case strings.Count(h, ":") > 1:
		if strings.Contains(h, "*") {
			return "", 0, 0, fmt.Errorf("invalid host %q", orig)
		}
		h = "[" + h + "]"
	default:
		if i := strings.IndexByte(h, ':'); i >= 0 {
			h, portStr = h[:i], h[i+1:]
			if portStr == "" {
				return "", 0, 0, fmt.Errorf("invalid host %q: empty port", orig)
			}
		}
		if len(h) > 1 && h[len(h)-1] == '.' {
			h = h[:len(h)-1]
		}
		if h == "" || h == "." {
			return "", 0, 0, fmt.Errorf("invalid host %q", orig)
		}
	}
	if portStr != "" {
		port = parsePort(portStr)
		if port <= 0 {
			return "", 0, 0, fmt.Errorf("invalid host %q: bad port %q", orig, portStr)
		}
	}
	switch strings.Count(h, "*") {
	case 0:
		return h, port, hostExact, nil
	case 1:
		if len(h) > 2 && strings.HasPrefix(h, "*.") {
			return h[1:], port, hostLeading, nil
		}
		if len(h) > 2 && strings.HasSuffix(h, ".*") {
			return h[:len(h)-1], port, hostTrailing, nil
		}
	}
	return "", 0, 0, fmt.Errorf("invalid host %q: a single wildcard is allowed only as \"*.\" prefix or \".*\" suffix", orig)
}

// parsePort parses a decimal port; it returns -1 when s is not a valid port
// (1-65535) and 0 for an empty string.
func parsePort(s string) int {
	if s == "" {
		return 0
	}
	if len(s) > 5 {
		return -1
	}
	p := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		p = p*10 + int(c-'0')
	}
	if p < 1 || p > 65535 {
		return -1
	}
	return p
}

// splitHost normalises a request Host header into a lower-case host name
// (brackets kept for IPv6, trailing dot removed) and its port: 0 when absent,
// -1 when malformed (matching only hosts without a port constraint).
func splitHost(host string) (string, int) {
	if host == "" {
		return "", 0
	}
	port := 0
	if host[0] == '[' {
		if end := strings.IndexByte(host, ']'); end >= 0 {
			if rest := host[end+1:]; rest != "" {
				if rest[0] == ':' {
					port = parsePort(rest[1:])
				} else {
					port = -1
				}
			}
			host = host[:end+1]
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i+1:], ':') < 0 {
		port = parsePort(host[i+1:])
		host = host[:i]
	}
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1]
	}
	return strings.ToLower(host), port
}

// Len returns the number of routes.
func (r *Router) Len() int { return len(r.routes) }

// Match finds the highest-priority route matching the request. host is the
// raw Host header, path the request path (without query) and h the request
// headers with canonical keys (h may be nil).
func (r *Router) Match(method, host, path string, h http.Header) (Match, bool) {
	return r.MatchHeaders(method, host, path, HTTPHeader(h))
}

// Headers gives the router a request's header values, whatever holds
// them. Value returns the i-th value (from 0, one per field line, in the
// order received) of the field named name, given in canonical form
// ([http.CanonicalHeaderKey]) and compared by the implementation
// case-insensitively or by exact key; ok is false past the last one.
type Headers interface {
	Value(name string, i int) (v string, ok bool)
}

// HTTPHeader is an http.Header as Headers (keys canonical, as net/http
// provides). Converting one does not allocate.
type HTTPHeader http.Header

// Value implements Headers.
func (h HTTPHeader) Value(name string, i int) (string, bool) {
	if v := h[name]; i < len(v) {
		return v[i], true
	}
	return "", false
}

// MatchHeaders is Match for headers held elsewhere than an http.Header (h
// must not be nil).
func (r *Router) MatchHeaders(method, host, path string, h Headers) (Match, bool) {
	name, port := splitHost(host)
	if b := r.exact[name]; b != nil {
		if m, end := b.find(method, port, path, h); m != nil {
			return result(m, path, end), true
		}
	}
	if name != "" && (len(r.leading) > 0 || len(r.trailing) > 0) {
		var (
			best    *matcher
			bestEnd int
		)
		consider := func(b *bucket) {
			if m, end := b.find(method, port, path, h); m != nil && (best == nil || m.rank < best.rank) {
				best, bestEnd = m, end
			}
		}
		if len(r.leading) > 0 {
			for i := 1; i < len(name); i++ {
				if name[i] == '.' {
					if b := r.leading[name[i:]]; b != nil {
						consider(b)
					}
				}
			}
		}
		if len(r.trailing) > 0 {
			for i := 1; i < len(name)-1; i++ {
				if name[i] == '.' {
					if b := r.trailing[name[:i+1]]; b != nil {
						consider(b)
					}
				}
			}
		}
		if best != nil {
			return result(best, path, bestEnd), true
		}
	}
	if r.any != nil {
		if m, end := r.any.find(method, port, path, h); m != nil {
			return result(m, path, end), true
		}
	}
	return Match{}, false
}

func result(m *matcher, path string, end int) Match {
	res := Match{Route: m.info.route, Path: path, Index: m.info.index}
	if !m.info.strip {
		return res
	}
	if end > 0 {
		res.Path = stripPrefix(path, end)
	}
	switch {
	case m.regex != nil || m.plen > 0:
		res.Prefix, res.Postfix = path[:end], path[end:]
	case path != "" && path[0] == '/':
		res.Postfix = path[1:]
	default:
		res.Postfix = path
	}
	return res
}

// stripPrefix removes path[:end] and makes sure the rest starts with "/",
// reusing the input string whenever possible.
func stripPrefix(path string, end int) string {
	rest := path[end:]
	switch {
	case rest == "":
		return "/"
	case rest[0] == '/':
		return rest
	case path[end-1] == '/':
		return path[end-1:]
	default:
		return "/" + rest
	}
}

// find returns the best matcher of the bucket accepting the request and the
// end offset of the matched path portion (only meaningful with strip_path).
func (b *bucket) find(method string, port int, path string, h Headers) (*matcher, int) {
	if b.rroot != nil {
		if m, end := b.findRegex(method, port, path, h); m != nil {
			return m, end
		}
	}
	if b.root == nil {
		return nil, 0
	}
	for n := b.root.deepest(path); n != nil; n = n.up {
		for i := range n.refs {
			rf := &n.refs[i]
			if (rf.port == 0 || rf.port == port) && rf.m.info.accepts(method, h) {
				return rf.m, rf.m.plen
			}
		}
	}
	return nil, 0
}

// deepest walks the trie along path and returns the deepest node with refs
// whose prefix is a prefix of path (nil if none). Its up chain lists the
// shallower candidates.
func (n *node) deepest(path string) *node {
	var last *node
	if len(n.refs) > 0 {
		last = n
	}
	for rest := path; rest != ""; {
		i := strings.IndexByte(n.firsts, rest[0])
		if i < 0 {
			break
		}
		c := n.children[i]
		if !strings.HasPrefix(rest, c.label) {
			break
		}
		rest = rest[len(c.label):]
		n = c
		if len(n.refs) > 0 {
			last = n
		}
	}
	return last
}

// findRegex evaluates, in rank order, the regex matchers whose literal prefix
// is a prefix of path. The candidates come from the literal-prefix trie as up
// to maxRegexChain sorted lists, merged on the stack.
func (b *bucket) findRegex(method string, port int, path string, h Headers) (*matcher, int) {
	var (
		chain [maxRegexChain][]ref
		k     int
	)
	for n := b.rroot.deepest(path); n != nil; n = n.up {
		if k == maxRegexChain {
			return scanRegexes(b.regexes, method, port, path, h)
		}
		chain[k] = n.refs
		k++
	}
	if k == 1 {
		return scanRegexes(chain[0], method, port, path, h)
	}
	for {
		best := -1
		for i := 0; i < k; i++ {
			if len(chain[i]) > 0 && (best < 0 || chain[i][0].m.rank < chain[best][0].m.rank) {
				best = i
			}
		}
		if best < 0 {
			return nil, 0
		}
		rf := &chain[best][0]
		chain[best] = chain[best][1:]
		if m, end, ok := tryRegex(rf, method, port, path, h); ok {
			return m, end
		}
	}
}

// scanRegexes evaluates rank-sorted regex refs one by one.
func scanRegexes(refs []ref, method string, port int, path string, h Headers) (*matcher, int) {
	for i := range refs {
		if m, end, ok := tryRegex(&refs[i], method, port, path, h); ok {
			return m, end
		}
	}
	return nil, 0
}

// tryRegex checks the cheap constraints first, then runs the regex.
func tryRegex(rf *ref, method string, port int, path string, h Headers) (*matcher, int, bool) {
	m := rf.m
	if (rf.port != 0 && rf.port != port) || !strings.HasPrefix(path, m.lit) || !m.info.accepts(method, h) {
		return nil, 0, false
	}
	if !m.info.strip {
		return m, 0, m.regex.MatchString(path)
	}
	loc := m.regex.FindStringIndex(path)
	if loc == nil {
		return nil, 0, false
	}
	return m, loc[1], true
}

// accepts checks the method and header constraints of a route.
func (ri *routeInfo) accepts(method string, h Headers) bool {
	if len(ri.methods) > 0 && !slices.Contains(ri.methods, method) {
		return false
	}
	for i := range ri.headers {
		hr := &ri.headers[i]
		if !anyEqualFold(h, hr.name, hr.values) {
			return false
		}
	}
	return true
}

func anyEqualFold(h Headers, name string, want []string) bool {
	for i := 0; ; i++ {
		g, ok := h.Value(name, i)
		if !ok {
			return false
		}
		for _, w := range want {
			if strings.EqualFold(g, w) {
				return true
			}
		}
	}
}
