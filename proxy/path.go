package proxy

import "strings"

// PathHandling selects how the service path, the route's matched path and
// the request path combine into the upstream path (Kong's path_handling).
type PathHandling uint8

const (
	// PathV0 is Kong's default: the service path and the rest of the
	// request path are joined with exactly one "/" between them, and a
	// request ending in "/" keeps its trailing slash.
	PathV0 PathHandling = iota
	// PathV1 is Kong's older scheme: the rest of the request path is
	// appended to the service path as it is ("/s" and "x" give "/sx"),
	// only a doubled "/" at the seam being dropped.
	PathV1
)

// upstreamPath returns the path sent upstream for a request to reqPath.
// base is the service path ("" counts as "/"); with strip, postfix is what
// the route's path left of reqPath (router.Match.Postfix). Both schemes
// follow Kong's router exactly, including its clean-up of a postfix that
// starts with "." or ".." segments.
func upstreamPath(h PathHandling, strip bool, base, reqPath, postfix string) string {
	if base == "" {
		base = "/"
	}
	if reqPath == "" || reqPath[0] != '/' {
		reqPath = "/" + reqPath // "*" of OPTIONS *, say
	}
	baseSlash := base[len(base)-1] == '/'
	if !strip {
		// The whole request path follows the service path; v0 puts a
		// "/" between them, v1 only avoids doubling one.
		if h == PathV1 || baseSlash {
			return base + reqPath[1:]
		}
		if reqPath == "/" {
			return base
		}
		return base + reqPath
	}
	postfix = cleanPostfix(postfix)
	if h == PathV1 {
		if baseSlash && strings.HasPrefix(postfix, "/") {
			return base[:len(base)-1] + postfix
		}
		return base + postfix
	}
	switch {
	case postfix == "":
		// Nothing left after the route's path: the request's trailing
		// slash decides the service path's ("/" alone counts as one
		// only for a service path ending in "/", as in Kong).
		reqSlash := reqPath[len(reqPath)-1] == '/'
		switch {
		case base == "/":
			return "/"
		case baseSlash && !reqSlash:
			return base[:len(base)-1]
		case !baseSlash && reqSlash && len(reqPath) > 1:
			return base + "/"
		}
		return base
	case postfix[0] == '/':
		if baseSlash {
			return base[:len(base)-1] + postfix
		}
		return base + postfix
	case baseSlash:
		return base + postfix
	}
	return base + "/" + postfix
}

// cleanPostfix drops a leading "." or ".." segment from a postfix, as Kong
// does: "." and ".." become "", "./x" and "../x" become "x".
func cleanPostfix(p string) string {
	switch {
	case p == "." || p == "..":
		return ""
	case strings.HasPrefix(p, "./"):
		return p[2:]
	case strings.HasPrefix(p, "../"):
		return p[3:]
	}
	return p
}

// String returns Kong's name for h.
func (h PathHandling) String() string {
	if h == PathV1 {
		return "v1"
	}
	return "v0"
}
