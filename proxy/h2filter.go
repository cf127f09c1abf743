package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The read side of an HTTP/2 connection, between the client and x/net's
// server.
//
// x/net/http2 departs from RFC 9113 in two places a conformance suite
// checks, and h2Filter, the reader x/net's ServeConn is given, mends both
// without x/net knowing:
//
//   - x/net hangs up (GOAWAY PROTOCOL_ERROR) on a SETTINGS frame that
//     repeats a setting, a hardening of its own. The filter rewrites a
//     client SETTINGS frame holding a repeated identifier to hold each
//     identifier once, with its last value: the values of a frame are
//     processed in order with nothing in between (RFC 9113 6.5.3), so the
//     connection ends in the same state. When one of the values a setting
//     is given is invalid, the first invalid one is kept instead, so the
//     frame fails as it would have, with the same error. (One difference
//     is left: an INITIAL_WINDOW_SIZE sequence whose intermediate value
//     overflows a stream window but whose last one does not is accepted.)
//     Frames of more than 100 settings, which x/net refuses anyway, are
//     left alone.
//   - A request whose header block carries a connection-specific field
//     (connection, keep-alive, proxy-connection, transfer-encoding,
//     upgrade) or TE other than "trailers" is malformed (RFC 9113 8.2.2):
//     a stream error PROTOCOL_ERROR. x/net answers it 400. The filter
//     decodes every header block (HEADERS and its CONTINUATION frames,
//     padding and priority stripped) with an HPACK decoder of its own, fed
//     exactly the fragments x/net's decoder is fed so that their dynamic
//     tables stay equal. When a block carries such a field, the filter
//     clears END_HEADERS on its last frame and follows that frame with a
//     CONTINUATION that ends the block with two empty host fields (literal
//     without indexing, so the tables stay equal): x/net refuses a request
//     with several host fields with RST_STREAM(PROTOCOL_ERROR) after
//     registering the stream and before any handler runs, so the request
//     never reaches the Proxy, DATA the client still sends on the stream
//     is accounted for and dropped, and the connection carries on.
//     Trailers carrying such a field end the same way (a host field is not
//     a valid trailer). A block x/net answers 431 (over the header list
//     limit) stays a 431.
//
// Everything else passes unchanged, byte for byte. The filter walks frame
// boundaries (a frame may arrive in any number of reads); it holds a whole
// frame only for the SETTINGS and header block frames it may have to
// change, and only up to the frame size the server reads (larger frames
// pass through, and x/net refuses them). Other frames' payloads are handed
// to x/net as they come, straight from the connection once the filter's
// read-ahead is used up. Once the client sends what x/net must refuse with
// a connection error (a frame out of order, a HEADERS frame on stream 0, a
// header block its decoder fails on), the filter stops looking and passes
// everything through: x/net ends the connection. The filter allocates
// nothing per frame: its buffer is a part of it, or while a frame larger
// than that is held, one of the server's pooled buffers; its HPACK
// decoder allocates only for the strings it adds to its dynamic table,
// as x/net's does.
//
// Read is called by x/net's frame reading goroutine alone (the serving
// goroutine reads the preface before starting it); the filter has no lock.

const (
	h2FrameHeaderLen = 9
	// h2FilterHeadroom is kept free before the frame being held, so that a
	// CONTINUATION (h2PoisonFrameLen bytes) can be put after it by moving
	// the frame down instead of moving what follows it.
	h2FilterHeadroom = 16
	// h2FilterSmall is the size of the buffer each filter holds: request
	// header frames and SETTINGS frames fit, and one read brings several
	// frames.
	h2FilterSmall = 2048
	// h2MaxSettings is the most settings x/net accepts in one frame.
	h2MaxSettings = 100

	h2FlagAck        = 0x1 // SETTINGS
	h2FlagEndHeaders = 0x4 // HEADERS, CONTINUATION
	h2FlagPadded     = 0x8 // HEADERS
	h2FlagPriority   = 0x20
)

// h2Poison is the fragment that makes x/net reset a stream: two host
// fields with empty values, each a literal without indexing of static
// table name 38 (RFC 7541 6.2.2).
var h2Poison = [...]byte{0x0f, 0x17, 0x00, 0x0f, 0x17, 0x00}

// h2PoisonFrameLen is the CONTINUATION frame carrying h2Poison.
const h2PoisonFrameLen = h2FrameHeaderLen + len(h2Poison)

// h2Filter is the read side filter of one HTTP/2 connection.
type h2Filter struct {
	src io.Reader
	// buf[r:w] is read from src and not yet handed out; of it,
	// buf[r:r+out] is ready to hand out. pass counts bytes still to come
	// from src that go out unchanged (the rest of a frame); while pass > 0,
	// the whole of buf[r:w] is ready (out == w-r).
	buf       []byte
	r, w, out int
	pass      int
	err       error // src's error, returned once what was read before it is out

	small [h2FilterHeadroom + h2FilterSmall]byte
	big   *[]byte    // a pooled buffer in use as buf, or nil
	pool  *sync.Pool // of *[]byte, len h2FilterHeadroom+h2FrameHeaderLen+maxFrame
	// maxFrame is the largest frame the server reads.
	maxFrame int

	// off: the client sent something x/net ends the connection for; the
	// filter no longer looks.
	off bool
	// blockStream is the stream of the header block being received (0:
	// none); skip: x/net does not decode that block (its padding was
	// invalid, a stream error); bad: the block carries a connection-
	// specific field; te: it carries a TE field.
	blockStream uint32
	skip        bool
	bad, te     bool
	dec         *hpack.Decoder
}

// newH2Filter filters src, which starts with the client preface. The
// decoder's table size must be the one x/net's decoder has
// (http2.Server.MaxDecoderHeaderTableSize); pool holds buffers of
// h2BigBufLen(maxFrame) bytes.
func newH2Filter(src io.Reader, tableSize uint32, maxFrame int, pool *sync.Pool) *h2Filter {
	f := &h2Filter{src: src, maxFrame: maxFrame, pool: pool, pass: len(http2.ClientPreface)}
	f.buf = f.small[:]
	f.r, f.w = h2FilterHeadroom, h2FilterHeadroom
	f.dec = hpack.NewDecoder(tableSize, f.field)
	return f
}

// preload puts b, the first bytes of the connection (read before the
// filter was made), in the filter's buffer; it reports false, leaving the
// filter as it was, when b does not fit.
func (f *h2Filter) preload(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if h2FilterHeadroom+len(b) > len(f.buf) {
		if h2FilterHeadroom+len(b) > h2BigBufLen(f.maxFrame) {
			return false
		}
		f.big = f.pool.Get().(*[]byte)
		f.buf = *f.big
	}
	f.w = f.r + copy(f.buf[f.r:], b)
	// The preface goes out unlooked at, from the buffer first.
	f.out = min(f.pass, len(b))
	f.pass -= f.out
	return true
}

// h2BigBufLen is the size of the buffers that hold one frame of up to
// maxFrame bytes.
func h2BigBufLen(maxFrame int) int { return h2FilterHeadroom + h2FrameHeaderLen + maxFrame }

func (f *h2Filter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if f.out > 0 {
			n := copy(p, f.buf[f.r:f.r+f.out])
			f.r += n
			f.out -= n
			return n, nil
		}
		if f.err != nil {
			err := f.err
			f.err = nil
			return 0, err
		}
		if f.pass > 0 {
			// buf is empty: the rest of the frame comes straight from src.
			n, err := f.src.Read(p[:min(len(p), f.pass)])
			f.pass -= n
			return n, err
		}
		if f.classify() {
			continue
		}
		if err := f.fill(); err != nil {
			if f.w > f.r && !isTimeout(err) {
				// The connection ends inside a frame: hand out what came.
				f.off = true
				f.out = f.w - f.r
			}
			f.err = err
		}
	}
}

// fill reads from src into buf's free tail, moving what it holds down
// first when little room is left.
func (f *h2Filter) fill() error {
	if f.r == f.w {
		f.r, f.w = h2FilterHeadroom, h2FilterHeadroom
		if f.big != nil {
			f.pool.Put(f.big)
			f.big = nil
			f.buf = f.small[:]
		}
	} else if len(f.buf)-f.w < 512 && f.r > h2FilterHeadroom {
		f.compact()
	}
	n, err := f.src.Read(f.buf[f.w:])
	f.w += n
	if n > 0 && err != nil {
		f.err = err // after the bytes
		return nil
	}
	return err
}

func (f *h2Filter) compact() {
	n := copy(f.buf[h2FilterHeadroom:], f.buf[f.r:f.w])
	f.r, f.w = h2FilterHeadroom, h2FilterHeadroom+n
}

// classify looks at the frame starting at buf[r] and makes (part of) it
// ready; it returns false when more bytes must be read first.
func (f *h2Filter) classify() bool {
	if f.w-f.r < h2FrameHeaderLen {
		if len(f.buf)-f.r < h2FrameHeaderLen {
			f.compact()
		}
		return false
	}
	h := f.buf[f.r : f.r+h2FrameHeaderLen]
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := http2.FrameType(h[3]), h[4]
	sid := binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)
	if length > f.maxFrame {
		// x/net refuses a frame over its limit (FRAME_SIZE_ERROR).
		f.off = true
	}
	if f.off {
		f.passFrame(length)
		return true
	}
	switch typ {
	case http2.FrameSettings:
		if flags&h2FlagAck != 0 || sid != 0 || length%6 != 0 || length < 12 || f.blockStream != 0 {
			f.passOrStop(length)
			return true
		}
		if !f.hold(length) {
			return false
		}
		f.settings(length)
		return true
	case http2.FrameHeaders, http2.FrameContinuation:
		switch {
		case typ == http2.FrameHeaders && (f.blockStream != 0 || sid == 0),
			typ == http2.FrameContinuation && (f.blockStream == 0 || sid != f.blockStream):
			// x/net: a connection error.
			f.off = true
			f.passFrame(length)
			return true
		}
		if !f.hold(length) {
			return false
		}
		f.headers(typ, flags, sid, length)
		return true
	default:
		f.passOrStop(length)
		return true
	}
}

// passOrStop passes a frame that is not part of a header block, which
// x/net ends the connection for when a block is open.
func (f *h2Filter) passOrStop(length int) {
	if f.blockStream != 0 {
		f.off = true
	}
	f.passFrame(length)
}

// passFrame makes the frame at buf[r] go out unchanged.
func (f *h2Filter) passFrame(length int) {
	n := h2FrameHeaderLen + length
	f.out = min(n, f.w-f.r)
	f.pass = n - f.out
}

// hold reports whether the whole frame of length bytes at buf[r] is in
// buf, making room for it when it is not.
func (f *h2Filter) hold(length int) bool {
	n := h2FrameHeaderLen + length
	if f.w-f.r >= n {
		return true
	}
	if h2FilterHeadroom+n > len(f.buf) && f.big == nil {
		f.big = f.pool.Get().(*[]byte)
		k := copy((*f.big)[h2FilterHeadroom:], f.buf[f.r:f.w])
		f.buf = *f.big
		f.r, f.w = h2FilterHeadroom, h2FilterHeadroom+k
	} else if f.r+n > len(f.buf) {
		f.compact()
	}
	return false
}

// settings hands out the SETTINGS frame of length bytes at buf[r], each
// identifier once when it repeats one.
func (f *h2Filter) settings(length int) {
	b := f.buf[f.r+h2FrameHeaderLen : f.r+h2FrameHeaderLen+length]
	n := length / 6
	id := func(i int) uint16 { return binary.BigEndian.Uint16(b[6*i:]) }
	dup := false
	for i := 1; i < n && !dup && n <= h2MaxSettings; i++ {
		for j := 0; j < i; j++ {
			if id(i) == id(j) {
				dup = true
				break
			}
		}
	}
	if !dup {
		f.out = h2FrameHeaderLen + length
		return
	}
	// keep[i]: setting i is the first invalid value of its identifier,
	// or its last value when none is invalid.
	var keep [h2MaxSettings]bool
	for i := 0; i < n; i++ {
		firstBad, last := -1, -1
		for j := 0; j < n; j++ {
			if id(j) != id(i) {
				continue
			}
			s := http2.Setting{ID: http2.SettingID(id(j)), Val: binary.BigEndian.Uint32(b[6*j+2:])}
			if firstBad < 0 && s.Valid() != nil {
				firstBad = j
			}
			last = j
		}
		keep[i] = i == firstBad || (firstBad < 0 && i == last)
	}
	// Move the kept settings to the end of the frame, in order, and the
	// header before them: a setting only moves up, past those dropped.
	to := length
	for i := n - 1; i >= 0; i-- {
		if keep[i] {
			to -= 6
			copy(b[to:to+6], b[6*i:6*i+6])
		}
	}
	kept := length - to
	copy(f.buf[f.r+to:], f.buf[f.r:f.r+h2FrameHeaderLen])
	f.r += to
	f.buf[f.r], f.buf[f.r+1], f.buf[f.r+2] = byte(kept>>16), byte(kept>>8), byte(kept)
	f.out = h2FrameHeaderLen + kept
}

// headers decodes the fragment of the header block frame of length bytes
// at buf[r] and hands it out, ended by the poison CONTINUATION when it
// ends a block carrying a connection-specific field.
func (f *h2Filter) headers(typ http2.FrameType, flags byte, sid uint32, length int) {
	n := h2FrameHeaderLen + length
	f.out = n
	frag := f.buf[f.r+h2FrameHeaderLen : f.r+n]
	if typ == http2.FrameHeaders {
		f.blockStream, f.skip, f.bad, f.te = sid, false, false, false
		pad := 0
		if flags&h2FlagPadded != 0 {
			if len(frag) < 1 {
				f.off = true // x/net: the frame is too short, the connection ends
				return
			}
			pad = int(frag[0])
			frag = frag[1:]
		}
		if flags&h2FlagPriority != 0 {
			if len(frag) < 5 {
				f.off = true
				return
			}
			frag = frag[5:]
		}
		if pad > len(frag) {
			// x/net resets the stream without decoding the block.
			f.skip = true
		} else {
			frag = frag[:len(frag)-pad]
		}
	}
	if !f.skip {
		if _, err := f.dec.Write(frag); err != nil {
			f.off = true // x/net: COMPRESSION_ERROR
			return
		}
	}
	if flags&h2FlagEndHeaders == 0 {
		return
	}
	f.blockStream = 0
	if f.skip {
		return
	}
	f.dec.SetEmitEnabled(true)
	if err := f.dec.Close(); err != nil {
		f.off = true // the block ends inside a field: COMPRESSION_ERROR
		return
	}
	if !f.bad {
		return
	}
	// Move the frame down and put the poison CONTINUATION after it.
	end := f.r + n
	copy(f.buf[f.r-h2PoisonFrameLen:], f.buf[f.r:end])
	f.r -= h2PoisonFrameLen
	f.buf[f.r+4] &^= h2FlagEndHeaders
	c := f.buf[end-h2PoisonFrameLen : end]
	c[0], c[1], c[2] = 0, 0, byte(len(h2Poison))
	c[3], c[4] = byte(http2.FrameContinuation), h2FlagEndHeaders
	binary.BigEndian.PutUint32(c[5:], sid)
	copy(c[h2FrameHeaderLen:], h2Poison[:])
	f.out = n + h2PoisonFrameLen
}

// field is the decoder's emit function: it notes the fields RFC 9113
// 8.2.2 forbids in a request (x/net's checkValidHTTP2RequestHeaders: a
// connection-specific field, or TE other than a single "trailers" or "").
func (f *h2Filter) field(hf hpack.HeaderField) {
	switch hf.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		f.bad = true
	case "te":
		f.bad = f.bad || f.te || (hf.Value != "trailers" && hf.Value != "")
		f.te = true
	}
	if f.bad {
		// The rest of the block need not be looked at (the table is
		// still kept).
		f.dec.SetEmitEnabled(false)
	}
}

// h2FilterConn is the connection x/net serves: nc read through the filter.
type h2FilterConn struct {
	net.Conn
	f *h2Filter
}

func (c *h2FilterConn) Read(p []byte) (int, error) { return c.f.Read(p) }

// h2FilterTLSConn is an h2FilterConn over TLS: x/net asks it for the TLS
// state (its checks, and Request.TLS).
type h2FilterTLSConn struct {
	h2FilterConn
	tc *tls.Conn
}

func (c *h2FilterTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
