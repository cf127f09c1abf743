package config

// Whole-entity checks the file and the admin API share (the field checks
// are in validate.go, the ranges and enums in schema.go).

// DefaultPathHandling is a route's path_handling when none is given.
const DefaultPathHandling = "v0"

// PathHandlings are the values of a route's path_handling, as in Kong.
func PathHandlings() []string { return []string{"v0", "v1"} }

// HashFallbackProblem returns why hash_fallback may not go with hash_on
// (Kong's rules), or "" when the pair is valid.
func HashFallbackProblem(on, fallback string) string {
	switch {
	case on == "none" && fallback != "none":
		return "must be none when hash_on is none"
	case on == "cookie" && fallback != "none":
		return "must be none when hash_on is cookie"
	case fallback != "none" && fallback == on:
		return "must differ from hash_on (both are " + on + ")"
	}
	return ""
}

// HashInputs are the settings that name what an upstream hashes on.
type HashInputs struct {
	Header, Cookie, QueryArg, URICapture string
}

// Missing reports whether hashing on input (a hash_on value) needs the
// setting hash_on_<input> and it is empty.
func (h HashInputs) Missing(input string) bool {
	switch input {
	case "header":
		return h.Header == ""
	case "cookie":
		return h.Cookie == ""
	case "query_arg":
		return h.QueryArg == ""
	case "uri_capture":
		return h.URICapture == ""
	}
	return false
}
