package plugins

import (
	"regexp"
	"strconv"
	"strings"
)

// cors is Kong's cors plugin: a preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered 200 by the gateway unless
// preflight_continue; other responses get the CORS headers.
type cors struct {
	allowAll bool
	// single is the only origin, a plain one sent as configured.
	single  string
	origins []originRule
	// headers, methods and exposed are joined with ",".
	headers, methods, exposed string
	maxAge                    string // "" for none
	credentials               bool
	privateNetwork            bool
	preflightContinue         bool
	allowOriginAbsent         bool
}

// originRule is one configured origin: a regular expression (matched
// against the request origin's host when it has no ':', else its
// scheme://host[:port]) or a plain origin.
type originRule struct {
	re     *regexp.Regexp
	domain string
	byHost bool
}

var plainOrigin = regexp.MustCompile(`^[A-Za-z0-9.:/-]+$`)

func newCORS(c map[string]any) (*cors, error) {
	co := &cors{credentials: boolean(c, "credentials"), privateNetwork: boolean(c, "private_network"),
		preflightContinue: boolean(c, "preflight_continue"), allowOriginAbsent: boolean(c, "allow_origin_absent"),
		headers: strings.Join(strs(c, "headers"), ","), exposed: strings.Join(strs(c, "exposed_headers"), ",")}
	if c["methods"] == nil {
		co.methods = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
	} else {
		co.methods = strings.Join(strs(c, "methods"), ",")
	}
	if v, ok := number(c, "max_age"); ok {
		co.maxAge = strconv.FormatFloat(v, 'f', -1, 64)
	}
	origins := strs(c, "origins")
	switch {
	case len(origins) == 0 || len(origins) == 1 && origins[0] == "*":
		co.allowAll = true
	case len(origins) == 1 && plainOrigin.MatchString(origins[0]):
		co.single = origins[0]
	}
	for _, o := range origins {
		if o == "*" {
			co.allowAll = true
			break
		}
		rule := originRule{byHost: !strings.Contains(o, ":")}
		if !plainOrigin.MatchString(o) {
			e := strings.TrimPrefix(o, "^")
			if !strings.HasSuffix(e, "$") {
				e += "$"
			}
			re, err := regexp.Compile("^(?:" + e + ")")
			if err != nil {
				return nil, err
			}
			rule.re = re
		} else {
			rule.domain, _ = normalizeOrigin(o)
		}
		co.origins = append(co.origins, rule)
	}
	return co, nil
}

// normalizeOrigin is an origin's scheme://host[:port], the default port
// dropped, and its host (Kong's normalize_origin); both are substrings of
// o.
func normalizeOrigin(o string) (domain, host string) {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return o, o
	}
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	hostport := rest[:end]
	h, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		h, port = hostport[:i], hostport[i+1:]
	}
	if h == "" {
		return o, o
	}
	n := len(scheme) + 3 + len(hostport)
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		n -= len(port) + 1
	}
	return o[:n], h
}

// origin sets Access-Control-Allow-Origin (Kong's configure_origin) and
// reports whether every origin is allowed.
func (co *cors) origin(x *Exchange, origin string, filter bool) bool {
	if co.allowAll {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Origin", "*"})
		return true
	}
	vary := OpSet
	if filter {
		vary = OpAppend
	}
	x.Down = append(x.Down, Edit{vary, "Vary", "Origin"})
	if co.single != "" {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Origin", co.single})
		return false
	}
	if origin != "" {
		domain, host := normalizeOrigin(origin)
		for _, o := range co.origins {
			var found bool
			switch {
			case o.re != nil && o.byHost:
				found = o.re.MatchString(host)
			case o.re != nil:
				found = o.re.MatchString(domain)
			default:
				found = domain == o.domain
			}
			if found {
				x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Origin", x.keep(domain)})
				return false
			}
		}
	}
	x.Down = append(x.Down, Edit{Op: OpRemove, Name: "Access-Control-Allow-Origin"})
	return false
}

func (co *cors) credentialsHeader(x *Exchange, allowAll, filter bool, origin string) {
	if !co.credentials {
		return
	}
	if !allowAll {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Credentials", "true"})
		return
	}
	if origin != "" {
		vary := OpSet
		if filter {
			vary = OpAppend
		}
		x.Down = append(x.Down, Edit{vary, "Vary", "Origin"},
			Edit{OpSet, "Access-Control-Allow-Origin", x.keep(origin)},
			Edit{OpSet, "Access-Control-Allow-Credentials", "true"})
	}
}

// respond is cors's header_filter: the headers of an ordinary
// (non-preflight) response.
func (co *cors) respond(x *Exchange, r Request) {
	origin, _ := r.Header("Origin")
	if origin == "" && !co.allowOriginAbsent {
		return
	}
	allowAll := co.origin(x, origin, true)
	co.credentialsHeader(x, allowAll, true, origin)
	if co.exposed != "" {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Expose-Headers", co.exposed})
	}
}

func (co *cors) access(x *Exchange, r Request) bool {
	origin, _ := r.Header("Origin")
	_, acrm := r.Header("Access-Control-Request-Method")
	if r.Method() != "OPTIONS" || origin == "" || !acrm {
		// An ordinary request: the response gets the headers.
		co.respond(x, r)
		return true
	}
	if co.preflightContinue {
		return true
	}
	allowAll := co.origin(x, origin, false)
	co.credentialsHeader(x, allowAll, false, origin)
	if co.headers != "" {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Headers", co.headers})
	} else if h, ok := r.Header("Access-Control-Request-Headers"); ok {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Headers", x.keep(h)})
	}
	x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Methods", co.methods})
	if co.maxAge != "" {
		x.Down = append(x.Down, Edit{OpSet, "Access-Control-Max-Age", co.maxAge})
	}
	if co.privateNetwork {
		if v, _ := r.Header("Access-Control-Request-Private-Network"); v == "true" {
			x.Down = append(x.Down, Edit{OpSet, "Access-Control-Allow-Private-Network", "true"})
		}
	}
	x.Status = 200
	return false
}
