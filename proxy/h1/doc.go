// Package h1 is the HTTP/1.1 framing layer of the proxy engine: it parses
// request and response heads in place, validates chunked bodies
// incrementally, and appends heads for the other side. It does no I/O and
// does not import net/http.
//
// # Contract
//
// ParseRequest and ParseResponse parse one message head from the start of a
// caller-owned buffer. Every []byte they store (Method, Target, Fields,
// Host, ...) is a sub-slice of that buffer: nothing is copied and nothing is
// decoded, so the slices are valid until the caller reuses or overwrites the
// buffer. On success they return the length of the head (the body, if any,
// starts at buf[n:]).
//
// A head that is not complete yet yields ErrIncomplete: read more bytes
// into the same buffer (or into a larger one that starts with the same
// bytes) and call again with the same *Request or *Response. The second
// call does not rescan from the start: the first call records where it
// stopped, later calls look for the end of the head with bytes.IndexByte
// from there, and the validating parse runs again only once the end of the
// head is present. A head fed one byte at a time is therefore fully parsed
// at most twice and searched once, so a slow sender costs O(n), with n
// bounded by Limits. Call Reset to drop that state and start a new message.
//
// Every refusal is a *Error with the status to answer (4xx/5xx for a
// request; 502 for a response from an upstream) and a short reason. After
// any *Error the caller must close the connection: the framing of what
// follows is unknown.
//
// # What is accepted and what is refused
//
// The rules are those of RFC 9112 read strictly, as HAProxy and nginx do by
// default, and they live in this package only:
//
//   - Lines end with CRLF. A bare LF is refused (400): RFC 9112 §2.2 lets a
//     recipient accept it, but accepting it is what makes a proxy and its
//     upstream disagree on where a line ends. A bare CR is refused too.
//   - Up to 8 empty lines before a request line are skipped (§2.2); more
//     are refused (400).
//   - Request line: method SP request-target SP HTTP-version, single spaces.
//     The method is a token; the target is 0x21-0x7E without '#' (no
//     fragment, no obs-text, no controls), kept byte for byte. Origin-form
//     ("/..."), absolute-form ("scheme://authority/..." without userinfo),
//     authority-form ("host:port", CONNECT only) and asterisk-form ("*",
//     OPTIONS only); anything else is 400. The version is exactly
//     "HTTP/d.d"; a major version other than 1 is 505; any other spelling
//     is 400. A request line over Limits.MaxRequestLine is 414.
//   - Field lines: name ":" OWS value OWS CRLF. The name is a token with no
//     whitespace before the colon (400); the value holds only field-vchar,
//     SP, HTAB and obs-text (400 otherwise); a line starting with SP or HTAB
//     (obs-fold) is 400. The field section over Limits.MaxHeaderBytes or
//     with more than Limits.MaxFields lines is 431.
//   - HTTP/1.1 needs exactly one Host; two Host fields are refused in any
//     version (400); a Host value with bytes outside the URI authority
//     characters is 400.
//   - Content-Length: one field with 1*DIGIT fitting in an int64. Lists
//     ("5, 5") and repeated fields are refused even when the values agree
//     (400): RFC 9110 §8.6 allows a recipient to merge equal values, but a
//     proxy that forwards the field byte for byte must not pass on a form
//     its upstream may read differently (nginx refuses duplicates too).
//   - Transfer-Encoding: the codings (over all the fields) must end with
//     chunked, appear once, and be tokens without parameters. A request
//     with Content-Length as well is refused (400; RFC 9112 §6.1 allows
//     either that or dropping Content-Length, and refusing is the one
//     that cannot smuggle). Transfer-Encoding in an HTTP/1.0 request is 400.
//     chunked not last, repeated, or an empty element is 400. Codings before
//     chunked from the IANA registry (gzip, deflate, compress, x-gzip,
//     x-compress) are accepted and forwarded as they are; any other coding,
//     "identity" included, is 501 as nginx answers, since the body can
//     still be framed but its meaning is not understood.
//   - Connection: a comma-separated list of tokens (400 otherwise). close
//     and keep-alive decide Close together with the version; upgrade
//     together with an Upgrade field sets Upgrade (HTTP/1.1 only, RFC 9110
//     §7.8). Every token also nominates the fields of that name as
//     hop-by-hop, except Host, Content-Length and Transfer-Encoding, which
//     a client cannot make a proxy drop.
//
// Responses follow the same field rules and refuse with status 502. Where
// they differ: the status line is HTTP-version SP 3DIGIT [SP reason], the
// code at least 100, the reason any mix of HTAB, SP, VCHAR and obs-text (a
// missing SP before an empty reason is tolerated, as every client does); a
// response with both Content-Length and Transfer-Encoding, or with
// Transfer-Encoding in HTTP/1.0, is refused like nginx does rather than
// repaired; codings are not checked against the registry (the proxy does
// not decode them), and a response whose codings do not end in chunked is
// read until close (RFC 9112 §6.3).
//
// Chunked bodies are checked by ChunkedScanner: chunk sizes are hex below
// 2^60, a chunk line (size and extensions) is at most 4096 bytes,
// extensions follow the chunk-ext grammar (tokens and quoted strings), data
// is followed by CRLF, and the trailer section follows the field rules with
// the head's limits. Its refusals carry status 400; for a response body the
// engine answers 502 or, once the response has started, closes.
//
// # Concurrency
//
// Nothing here is shared: a Request, Response or ChunkedScanner belongs to
// one goroutine (the one driving its connection) at a time. Package-level
// values are read-only tables.
package h1
