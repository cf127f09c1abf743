package balance

// HashKey hashes a request's hash key (a header value, cookie, client IP,
// ...) into Request.Key. It is stable across processes and versions, so
// every sidecar of a fleet sends the same key to the same target.
func HashKey(s string) uint64 { return mix64(fnv1a64(s)) }
