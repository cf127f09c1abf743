package h1

// Chunk limits (see the package documentation).
const (
	// MaxChunkLine bounds a chunk-size line: size, extensions, CRLF excluded.
	MaxChunkLine = 4096
	// maxChunkSize is one more than the largest chunk size accepted.
	maxChunkSize = 1 << 60
)

type chunkState uint8

const (
	csSize          chunkState = iota // first hex digit of a chunk size
	csSizeMore                        // further hex digits
	csSizeWS                          // BWS after the size: only ';' may follow
	csExtPre                          // after ';': BWS, then an extension name
	csExtName                         // in an extension name
	csExtNameWS                       // BWS after a name: '=' or ';'
	csExtValPre                       // after '=': BWS, then a token or a quoted string
	csExtVal                          // in a token value
	csExtValWS                        // BWS after a value: ';' only
	csExtQuoted                       // in a quoted string
	csExtQuotedPair                   // after a backslash in a quoted string
	csExtQuotedEnd                    // after the closing quote
	csSizeLF                          // CR seen at the end of the size line
	csData                            // chunk data, remaining bytes to go
	csDataCR                          // CR after data
	csDataLF                          // LF after data
	csTrailerStart                    // start of a trailer line, or the final CRLF
	csTrailerName                     // in a trailer field name
	csTrailerValue                    // in a trailer field value
	csTrailerLF                       // CR seen at the end of a trailer line
	csEndLF                           // CR of the final CRLF seen
	csDone                            // body complete
)

// ChunkedScanner validates a chunked body incrementally. Feed it the body
// bytes as they arrive, in slices of any size; it reports how many of them
// belong to the body so the engine forwards exactly those, byte for byte,
// and notices the end of the body (after the last chunk, the trailer
// section and the final CRLF). The zero value is ready with the default
// limits; Reset prepares it for another body.
//
// A ChunkedScanner belongs to one goroutine at a time.
type ChunkedScanner struct {
	// KeepTrailer makes the scanner copy the trailer section so Trailer can
	// return its fields; without it trailers are only validated.
	KeepTrailer bool

	lim     limits
	limSet  bool
	state   chunkState
	size    uint64 // chunk size being read, then data bytes remaining
	line    int    // bytes of the current chunk-size line
	tbytes  int    // bytes of the trailer section so far
	tfields int    // trailer lines so far
	trailer []byte // kept trailer section (KeepTrailer), CRLFs included
	total   int64  // data bytes so far
}

// Reset prepares s for a new body with the given limits for its trailer
// section (MaxHeaderBytes, MaxFields; nil for the defaults). KeepTrailer and
// the capacity of the kept trailer are kept.
func (s *ChunkedScanner) Reset(lim *Limits) {
	*s = ChunkedScanner{KeepTrailer: s.KeepTrailer, trailer: s.trailer[:0], lim: lim.resolve(), limSet: true}
}

// Done reports whether the whole body has been seen.
func (s *ChunkedScanner) Done() bool { return s.state == csDone }

// DataLen is the number of data bytes (chunk payload) seen so far.
func (s *ChunkedScanner) DataLen() int64 { return s.total }

// Scan consumes the next bytes of the body. It returns how many bytes of p
// belong to the body: len(p) unless the body ends inside p (then Done is
// true and p[n:] is the next message) or an error is found at p[n]. After
// Done, Scan returns 0, nil.
func (s *ChunkedScanner) Scan(p []byte) (n int, err error) {
	return s.scan(p, nil)
}

// Decode is Scan that also appends the chunk data found in p[:n] to dst.
func (s *ChunkedScanner) Decode(dst, p []byte) ([]byte, int, error) {
	n, err := s.scan(p, &dst)
	return dst, n, err
}

func (s *ChunkedScanner) fail(reason string) error { return &Error{Status: 400, Reason: reason} }

func (s *ChunkedScanner) scan(p []byte, dst *[]byte) (int, error) {
	if !s.limSet {
		s.lim, s.limSet = (*Limits)(nil).resolve(), true
	}
	if s.state == csDone {
		return 0, nil
	}
	i := 0
	for i < len(p) {
		if s.state == csData {
			k := len(p) - i
			if uint64(k) > s.size {
				k = int(s.size)
			}
			if dst != nil {
				*dst = append(*dst, p[i:i+k]...)
			}
			i += k
			s.size -= uint64(k)
			s.total += int64(k)
			if s.size == 0 {
				s.state = csDataCR
			}
			continue
		}
		c := p[i]
		if s.state <= csSizeLF {
			s.line++
			if s.line > MaxChunkLine+2 {
				return i, s.fail("chunk line too long")
			}
		} else if s.state >= csTrailerStart && s.state <= csEndLF {
			s.tbytes++
			if s.tbytes > s.lim.header {
				return i, s.fail("trailer section too large")
			}
			if s.KeepTrailer && s.state != csEndLF && !(s.state == csTrailerStart && c == '\r') {
				s.trailer = append(s.trailer, c)
			}
		}
		i++
		switch s.state {
		case csSize, csSizeMore:
			if d, ok := unhex(c); ok {
				if s.size >= maxChunkSize>>4 {
					return i - 1, s.fail("chunk size too large")
				}
				s.size = s.size<<4 | uint64(d)
				s.state = csSizeMore
				continue
			}
			if s.state == csSize {
				return i - 1, s.fail("invalid chunk size")
			}
			switch {
			case c == '\r':
				s.state = csSizeLF
			case c == ';':
				s.state = csExtPre
			case isOWS(c):
				s.state = csSizeWS
			case c == '\n':
				return i - 1, s.fail("bare LF")
			default:
				return i - 1, s.fail("invalid chunk size")
			}
		case csSizeWS, csExtValWS:
			switch {
			case c == ';':
				s.state = csExtPre
			case !isOWS(c):
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtPre:
			switch {
			case classes[c]&cToken != 0:
				s.state = csExtName
			case !isOWS(c):
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtName:
			switch {
			case classes[c]&cToken != 0:
			case c == '=':
				s.state = csExtValPre
			case c == ';':
				s.state = csExtPre
			case c == '\r':
				s.state = csSizeLF
			case isOWS(c):
				s.state = csExtNameWS
			default:
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtNameWS:
			switch {
			case c == '=':
				s.state = csExtValPre
			case c == ';':
				s.state = csExtPre
			case !isOWS(c):
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtValPre:
			switch {
			case classes[c]&cToken != 0:
				s.state = csExtVal
			case c == '"':
				s.state = csExtQuoted
			case !isOWS(c):
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtVal, csExtQuotedEnd:
			switch {
			case s.state == csExtVal && classes[c]&cToken != 0:
			case c == ';':
				s.state = csExtPre
			case c == '\r':
				s.state = csSizeLF
			case isOWS(c):
				s.state = csExtValWS
			default:
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtQuoted:
			switch {
			case c == '"':
				s.state = csExtQuotedEnd
			case c == '\\':
				s.state = csExtQuotedPair
			case classes[c]&cQText == 0:
				return i - 1, s.fail("invalid chunk extension")
			}
		case csExtQuotedPair:
			if classes[c]&cValue == 0 {
				return i - 1, s.fail("invalid chunk extension")
			}
			s.state = csExtQuoted
		case csSizeLF:
			if c != '\n' {
				return i - 1, s.fail("CR not followed by LF")
			}
			s.line = 0
			if s.size == 0 {
				s.state = csTrailerStart
			} else {
				s.state = csData
			}
		case csDataCR:
			if c != '\r' {
				return i - 1, s.fail("chunk data not followed by CRLF")
			}
			s.state = csDataLF
		case csDataLF:
			if c != '\n' {
				return i - 1, s.fail("chunk data not followed by CRLF")
			}
			s.state = csSize
		case csTrailerStart:
			switch {
			case c == '\r':
				s.state = csEndLF
			case classes[c]&cToken != 0:
				s.tfields++
				if s.tfields > s.lim.fields {
					return i - 1, s.fail("too many trailer fields")
				}
				s.state = csTrailerName
			case c == '\n':
				return i - 1, s.fail("bare LF")
			case isOWS(c):
				return i - 1, s.fail("obsolete line folding")
			default:
				return i - 1, s.fail("invalid byte in field name")
			}
		case csTrailerName:
			switch {
			case classes[c]&cToken != 0:
			case c == ':':
				s.state = csTrailerValue
			case isOWS(c):
				return i - 1, s.fail("whitespace between field name and colon")
			default:
				return i - 1, s.fail("invalid byte in field name")
			}
		case csTrailerValue:
			switch {
			case c == '\r':
				s.state = csTrailerLF
			case c == '\n':
				return i - 1, s.fail("bare LF")
			case classes[c]&cValue == 0:
				return i - 1, s.fail("invalid byte in field value")
			}
		case csTrailerLF:
			if c != '\n' {
				return i - 1, s.fail("CR not followed by LF")
			}
			s.state = csTrailerStart
		case csEndLF:
			if c != '\n' {
				return i - 1, s.fail("CR not followed by LF")
			}
			s.state = csDone
			return i, nil
		}
	}
	return i, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Trailer appends to dst the trailer fields of a body scanned with
// KeepTrailer, once Done. The fields are sub-slices of the scanner's copy,
// valid until Reset.
func (s *ChunkedScanner) Trailer(dst []Field) []Field {
	t := s.trailer
	for len(t) > 0 {
		e := 0
		for e < len(t) && t[e] != '\r' {
			e++
		}
		line := t[:e]
		if e+2 <= len(t) {
			t = t[e+2:]
		} else {
			t = nil
		}
		c := 0
		for c < len(line) && line[c] != ':' {
			c++
		}
		if c == len(line) {
			continue
		}
		dst = append(dst, Field{Name: line[:c], Value: trimOWS(line[c+1:])})
	}
	return dst
}
