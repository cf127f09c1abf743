package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// outcome reads frames until stream id ends: "status N" for a response
// head, "reset CODE" for RST_STREAM; a GOAWAY or the end of the
// connection fails the test.
func (c *h2Conn) outcome(id uint32) string {
	c.t.Helper()
	for range 100 {
		switch f := c.next().(type) {
		case nil:
			c.t.Fatalf("stream %d: the connection ended", id)
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				return "status " + f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			c.t.Fatalf("stream %d: GOAWAY %v %q", id, f.ErrCode, f.DebugData())
		}
	}
	c.t.Fatalf("stream %d: no end in 100 frames", id)
	return ""
}

// block is a GET header block for path with the extra fields, encoded by
// the connection's encoder (which indexes what it can).
func (c *h2Conn) block(path string, extra ...hpack.HeaderField) []byte {
	c.buf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "a.test"}, {Name: ":path", Value: path},
	}, extra...) {
		_ = c.enc.WriteField(f)
	}
	return bytes.Clone(c.buf.Bytes())
}

func (c *h2Conn) check(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// hitCounter is an origin answering every request with the X-A field it
// got, counting the requests.
type hitCounter struct {
	mu   sync.Mutex
	hits []string
}

func (h *hitCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.hits = append(h.hits, r.URL.Path)
	h.mu.Unlock()
	w.Header().Set("X-A", r.Header.Get("X-A"))
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, "hello")
}

func (h *hitCounter) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.hits...)
}

func h2cFilterConn(t *testing.T) (*h2Conn, *hitCounter) {
	h := &hitCounter{}
	url := serveEngine(t, h2Proxy(t, h), ServerOptions{H2C: true})
	c := dialH2(t, strings.TrimPrefix(url, "http://"))
	if f, ok := c.next().(*http2.SettingsFrame); !ok || f.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	return c, h
}

// A SETTINGS frame that gives a setting twice is processed in order (the
// last value holds) and acknowledged, not hung up on: h2spec 6.5.3 sets
// INITIAL_WINDOW_SIZE to 100 then 1 and expects DATA frames of 1 byte.
func TestH2FilterRepeatedSetting(t *testing.T) {
	c, _ := h2cFilterConn(t)
	c.check(c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1 << 20},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
	))
	for {
		f := c.next()
		if s, ok := f.(*http2.SettingsFrame); ok && s.IsAck() {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v", g.ErrCode)
		}
		if f == nil {
			t.Fatal("the connection ended")
		}
	}
	c.request(1, "/w")
	for {
		switch f := c.next().(type) {
		case *http2.DataFrame:
			if len(f.Data()) != 1 {
				t.Fatalf("DATA of %d bytes, want 1 (the window is 1)", len(f.Data()))
			}
			return
		case *http2.GoAwayFrame, *http2.RSTStreamFrame, nil:
			t.Fatalf("%v before the first DATA frame", f)
		}
	}
}

// An invalid value among repeated ones still fails the frame with the
// error the value calls for.
func TestH2FilterRepeatedSettingInvalid(t *testing.T) {
	c, _ := h2cFilterConn(t)
	c.check(c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
	))
	for {
		switch f := c.next().(type) {
		case nil:
			t.Fatal("the connection ended without GOAWAY")
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeFlowControl {
				t.Fatalf("GOAWAY %v, want FLOW_CONTROL_ERROR", f.ErrCode)
			}
			return
		}
	}
}

// A request carrying a connection-specific field, or TE other than
// "trailers", is a stream error PROTOCOL_ERROR that never reaches the
// upstream; the connection carries on.
func TestH2FilterConnectionSpecificFields(t *testing.T) {
	c, h := h2cFilterConn(t)
	bad := [][]hpack.HeaderField{
		{{Name: "connection", Value: "keep-alive"}},
		{{Name: "keep-alive", Value: "timeout=5"}},
		{{Name: "proxy-connection", Value: "keep-alive"}},
		{{Name: "transfer-encoding", Value: "chunked"}},
		{{Name: "upgrade", Value: "websocket"}},
		{{Name: "trailers", Value: "test"}, {Name: "te", Value: "trailers, deflate"}},
		{{Name: "te", Value: "trailers"}, {Name: "te", Value: "trailers"}},
		// Never indexed: the decoder reads it all the same.
		{{Name: "connection", Value: "close", Sensitive: true}},
	}
	id := uint32(1)
	for _, extra := range bad {
		c.request(id, "/bad", extra...)
		if got := c.outcome(id); got != "reset PROTOCOL_ERROR" {
			t.Errorf("%v: %s, want reset PROTOCOL_ERROR", extra, got)
		}
		id += 2
	}
	c.request(id, "/te", hpack.HeaderField{Name: "te", Value: "trailers"})
	if got := c.outcome(id); got != "status 200" {
		t.Fatalf("TE trailers: %s", got)
	}
	if got := h.seen(); len(got) != 1 || got[0] != "/te" {
		t.Fatalf("the upstream saw %q, want only /te", got)
	}
}

// A request with a body and a connection-specific field is reset; the
// DATA frames the client sends after are dropped and the connection serves
// the next request.
func TestH2FilterConnectionSpecificFieldWithBody(t *testing.T) {
	c, h := h2cFilterConn(t)
	blk := c.block("/bad", hpack.HeaderField{Name: "connection", Value: "keep-alive"})
	c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: true}))
	c.check(c.fr.WriteData(1, false, bytes.Repeat([]byte("x"), 1000)))
	c.check(c.fr.WriteData(1, true, bytes.Repeat([]byte("y"), 1000)))
	if got := c.outcome(1); got != "reset PROTOCOL_ERROR" {
		t.Fatalf("%s, want reset PROTOCOL_ERROR", got)
	}
	c.request(3, "/ok")
	if got := c.outcome(3); got != "status 200" {
		t.Fatalf("next request: %s", got)
	}
	if got := h.seen(); len(got) != 1 || got[0] != "/ok" {
		t.Fatalf("the upstream saw %q", got)
	}
}

// A header block across HEADERS (padded, with priority) and CONTINUATION
// frames, the forbidden field split between two of them, is reset; a good
// one split the same way is served.
func TestH2FilterContinuation(t *testing.T) {
	c, h := h2cFilterConn(t)
	for i, tc := range []struct {
		extra []hpack.HeaderField
		want  string
	}{
		{[]hpack.HeaderField{{Name: "x-long", Value: strings.Repeat("v", 100)}, {Name: "transfer-encoding", Value: "chunked"}}, "reset PROTOCOL_ERROR"},
		{[]hpack.HeaderField{{Name: "x-long", Value: strings.Repeat("w", 100)}, {Name: "x-other", Value: "chunked"}}, "status 200"},
	} {
		id := uint32(2*i + 1)
		blk := c.block("/split", tc.extra...)
		// Cut inside the last field, then in three pieces.
		cut1, cut2 := len(blk)-8, len(blk)-3
		c.check(c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk[:cut1], EndStream: true, PadLength: 7,
			Priority: http2.PriorityParam{StreamDep: 0, Weight: 10}}))
		c.check(c.fr.WriteContinuation(id, false, blk[cut1:cut2]))
		c.check(c.fr.WriteContinuation(id, true, blk[cut2:]))
		if got := c.outcome(id); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.extra, got, tc.want)
		}
	}
	if got := h.seen(); len(got) != 1 {
		t.Fatalf("the upstream saw %q", got)
	}
}

// Entries the client adds to the HPACK dynamic table stay in both
// decoders, the filter's and x/net's, also in a block the filter ends: a
// forbidden field sent again as an index is caught, and a good field
// sent as an index reaches the upstream.
func TestH2FilterDynamicTable(t *testing.T) {
	c, h := h2cFilterConn(t)
	xa := hpack.HeaderField{Name: "x-a", Value: "one"}
	conn := hpack.HeaderField{Name: "connection", Value: "close"}
	c.request(1, "/1", xa, conn)
	if got := c.outcome(1); got != "reset PROTOCOL_ERROR" {
		t.Fatalf("first: %s", got)
	}
	// The same fields again: both are one byte each now (indexed).
	blk := c.block("/1", xa, conn)
	if blk[len(blk)-1]&0x80 == 0 || blk[len(blk)-2]&0x80 == 0 {
		t.Fatalf("the encoder did not index the fields: % x", blk)
	}
	c.request(3, "/1", xa, conn)
	if got := c.outcome(3); got != "reset PROTOCOL_ERROR" {
		t.Fatalf("indexed connection field: %s", got)
	}
	c.request(5, "/2", xa)
	var status, got string
	for status == "" {
		switch f := c.next().(type) {
		case nil:
			t.Fatal("the connection ended")
		case *http2.MetaHeadersFrame:
			if f.StreamID == 5 {
				status = f.PseudoValue("status")
				for _, hf := range f.RegularFields() {
					if hf.Name == "x-a" {
						got = hf.Value
					}
				}
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("%v", f)
		}
	}
	if status != "200" || got != "one" {
		t.Fatalf("status %s, the upstream saw X-A %q, want 200 and one", status, got)
	}
	if n := len(h.seen()); n != 1 {
		t.Fatalf("the upstream saw %d requests", n)
	}
}

// On an h2c listener a connection that starts with neither the HTTP/2
// preface nor an HTTP/1.x request line is a failed preface: SETTINGS and
// GOAWAY(PROTOCOL_ERROR), then the close (h2spec 3.5). Without h2c it is
// still answered 400 (505 for the version), and on either an HTTP/1.1
// request with a bad field is answered 400.
func TestH2CInvalidPreface(t *testing.T) {
	p := h2Proxy(t, http.NotFoundHandler())
	h2c := strings.TrimPrefix(serveEngine(t, p, ServerOptions{H2C: true}), "http://")
	plain := strings.TrimPrefix(serveEngine(t, p, ServerOptions{}), "http://")
	exchange := func(addr, send string) []byte {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(nc, send); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(nc)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("%q: %v", send, err)
		}
		return b
	}
	for _, send := range []string{
		"INVALID CONNECTION PREFACE\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
	} {
		b := exchange(h2c, send)
		fr := http2.NewFramer(nil, bytes.NewReader(b))
		f1, err1 := fr.ReadFrame()
		s, ok := f1.(*http2.SettingsFrame)
		if err1 != nil || !ok || s.IsAck() {
			t.Fatalf("h2c, %q: got %q, want SETTINGS then GOAWAY", send, b)
		}
		f2, err2 := fr.ReadFrame()
		g, ok := f2.(*http2.GoAwayFrame)
		if err2 != nil || !ok || g.ErrCode != http2.ErrCodeProtocol || g.LastStreamID != 0 {
			t.Fatalf("h2c, %q: got %q, want GOAWAY PROTOCOL_ERROR after SETTINGS", send, b)
		}
		if _, err := fr.ReadFrame(); err != io.EOF {
			t.Fatalf("h2c, %q: more after GOAWAY (%v)", send, err)
		}
		if b := exchange(plain, send); !bytes.HasPrefix(b, []byte("HTTP/1.1 400 ")) && !bytes.HasPrefix(b, []byte("HTTP/1.1 505 ")) {
			t.Fatalf("plaintext, %q: got %q, want 400 or 505", send, b)
		}
	}
	for _, addr := range []string{h2c, plain} {
		if b := exchange(addr, "GET / HTTP/1.1\r\nHost: a\r\nbad field\r\n\r\n"); !bytes.HasPrefix(b, []byte("HTTP/1.1 400 ")) {
			t.Fatalf("%s, a bad field: got %q, want 400", addr, b)
		}
	}
}

func TestH1RequestLine(t *testing.T) {
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n":                  true,
		"\r\n\r\nPOST /x?y HTTP/1.0\r\nHost:": true,
		"GET /" + strings.Repeat("a", 100):    true, // not complete yet
		"OPTIONS * HTTP/1.1\r\n":              true,
		"INVALID CONNECTION PREFACE\r\n\r\n":  false,
		"PRI * HTTP/2.0\r\n\r\nXX":            false,
		"GET / HTTP/2.0\r\n":                  false,
		"GET /\r\n":                           false,
		"GET  HTTP/1.1\r\n":                   false,
		"G(T / HTTP/1.1\r\n":                  false,
		"\x16\x03\x01\x02\x00":                false,
		"GET /\x00":                           false,
		" GET / HTTP/1.1\r\n":                 false,
		"GET / HTTP/1.1x\r\n":                 false,
	} {
		if got := h1RequestLine([]byte(in)); got != want {
			t.Errorf("h1RequestLine(%q) = %v, want %v", in, got, want)
		}
	}
}

// Filter-level tests: the filter reads from a scripted source, and what it
// hands out is compared whole.

// chunkReader yields data in pieces of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data))
	if len(r.sizes) > 0 {
		n = min(n, r.sizes[r.i%len(r.sizes)])
		r.i++
	}
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func testFilterPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, h2BigBufLen(h2MaxReadFrameSize))
		return &b
	}}
}

// filterAll runs data through a new filter, the source yielding pieces
// of srcSizes bytes and the reader asking for readSizes at a time.
func filterAll(t testing.TB, data []byte, pool *sync.Pool, srcSizes, readSizes []int) []byte {
	f := newH2Filter(&chunkReader{data: data, sizes: srcSizes}, h2DecoderTableSize, h2MaxReadFrameSize, pool)
	var out []byte
	p := make([]byte, 1<<16)
	for i := 0; ; i++ {
		n := len(p)
		if len(readSizes) > 0 {
			n = readSizes[i%len(readSizes)]
		}
		m, err := f.Read(p[:n])
		out = append(out, p[:m]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m == 0 && i > 10*len(data)+100 {
			t.Fatal("the filter makes no progress")
		}
		if len(f.buf) > h2BigBufLen(h2MaxReadFrameSize) {
			t.Fatalf("buffer of %d bytes", len(f.buf))
		}
	}
	return out
}

// frameBytes is a frame, header and payload.
func frameBytes(typ http2.FrameType, flags byte, sid uint32, payload []byte) []byte {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), byte(typ), flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], sid)
	return append(b, payload...)
}

func settingsPayload(s ...uint32) []byte {
	var b []byte
	for i := 0; i < len(s); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(s[i]))
		b = binary.BigEndian.AppendUint32(b, s[i+1])
	}
	return b
}

// filterScript is a client's side of a connection with every case the
// filter handles, and what the filter must make of it.
func filterScript() (in, want []byte) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	blk := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i < len(fields); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	poison := frameBytes(http2.FrameContinuation, h2FlagEndHeaders, 0, h2Poison[:])
	poisonFor := func(sid uint32) []byte {
		p := bytes.Clone(poison)
		binary.BigEndian.PutUint32(p[5:], sid)
		return p
	}
	same := func(b []byte) { in = append(in, b...); want = append(want, b...) }
	in = append(in, http2.ClientPreface...)
	want = append(want, http2.ClientPreface...)
	// SETTINGS: unique ones pass; repeated ones keep the last value.
	same(frameBytes(http2.FrameSettings, 0, 0, settingsPayload(2, 0, 4, 1000)))
	in = append(in, frameBytes(http2.FrameSettings, 0, 0, settingsPayload(4, 100, 2, 0, 4, 1, 6, 9, 2, 0))...)
	want = append(want, frameBytes(http2.FrameSettings, 0, 0, settingsPayload(4, 1, 6, 9, 2, 0))...)
	same(frameBytes(http2.FrameSettings, h2FlagAck, 0, nil))
	// A good request, indexing its fields.
	same(frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 1, blk(":method", "GET", ":path", "/a", "x-a", "one")))
	// A bad one in one frame, then in HEADERS (padded, priority) and two
	// CONTINUATIONs, the field cut in the middle.
	b := blk(":method", "GET", ":path", "/b", "connection", "close")
	h := frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 3, b)
	in = append(in, h...)
	h[4] &^= h2FlagEndHeaders
	want = append(append(want, h...), poisonFor(3)...)
	b = blk(":method", "GET", ":path", "/c", "x-long", strings.Repeat("z", 3000), "te", "gzip")
	pl := append(append([]byte{4}, 0, 0, 0, 0, 7), b[:10]...)
	pl = append(pl, 0, 0, 0, 0)
	same(frameBytes(http2.FrameHeaders, 0x1|h2FlagPadded|h2FlagPriority, 5, pl))
	same(frameBytes(http2.FrameContinuation, 0, 5, b[10:len(b)-3]))
	c := frameBytes(http2.FrameContinuation, h2FlagEndHeaders, 5, b[len(b)-3:])
	in = append(in, c...)
	c[4] &^= h2FlagEndHeaders
	want = append(append(want, c...), poisonFor(5)...)
	// A large header frame (held in a pooled buffer), good, then bad
	// with its fields indexed.
	same(frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 7, blk(":method", "GET", ":path", "/d", "x-big", strings.Repeat("q", 10000))))
	h = frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 9, blk(":method", "GET", ":path", "/b", "connection", "close", "x-big", strings.Repeat("r", 10000)))
	in = append(in, h...)
	h[4] &^= h2FlagEndHeaders
	want = append(append(want, h...), poisonFor(9)...)
	// Other frames pass, a large DATA frame among them, and trailers
	// carrying TE other than trailers end the same way.
	same(frameBytes(http2.FrameHeaders, h2FlagEndHeaders, 11, blk(":method", "POST", ":path", "/e")))
	same(frameBytes(http2.FrameData, 0, 11, bytes.Repeat([]byte("d"), 16000)))
	same(frameBytes(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 1, 0}))
	same(frameBytes(http2.FramePing, 0, 0, []byte("12345678")))
	h = frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 11, blk("te", "deflate"))
	in = append(in, h...)
	h[4] &^= h2FlagEndHeaders
	want = append(append(want, h...), poisonFor(11)...)
	// The first request again, indexed: still good.
	same(frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 13, blk(":method", "GET", ":path", "/a", "x-a", "one")))
	// A frame over the size limit: passed, and nothing is looked at
	// after it.
	same(frameBytes(http2.FrameData, 0, 13, bytes.Repeat([]byte("o"), h2MaxReadFrameSize+1)))
	same(frameBytes(http2.FrameSettings, 0, 0, settingsPayload(4, 100, 4, 1)))
	return in, want
}

// The filter hands out the same bytes however the frames are split across
// reads: whole, at every byte boundary of the script's first part, one
// byte at a time, and with small reads on either side.
func TestH2FilterSplitReads(t *testing.T) {
	in, want := filterScript()
	pool := testFilterPool()
	if got := filterAll(t, in, pool, nil, nil); !bytes.Equal(got, want) {
		t.Fatalf("whole: got %d bytes, want %d\n%s", len(got), len(want), firstDiff(got, want))
	}
	// Every cut in the script up to the large frames (3.5 KB), and a
	// stride through the rest.
	for k := 1; k < len(in); k++ {
		if k > 4000 && k%97 != 0 {
			continue
		}
		got := filterAll(t, in, pool, []int{k, len(in)}, nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("cut at %d: %s", k, firstDiff(got, want))
		}
	}
	for _, sizes := range [][]int{{1}, {9}, {2, 7, 3}, {4096}} {
		for _, reads := range [][]int{nil, {1}, {9, 3}} {
			if got := filterAll(t, in, pool, sizes, reads); !bytes.Equal(got, want) {
				t.Fatalf("pieces %v, reads %v: %s", sizes, reads, firstDiff(got, want))
			}
		}
	}
}

// The bytes the engine read before handing the connection over may be put
// in the filter's buffer (small or pooled) first; more than a pooled buffer
// holds are refused.
func TestH2FilterPreload(t *testing.T) {
	in, want := filterScript()
	pool := testFilterPool()
	for _, k := range []int{0, 10, 24, 100, h2FilterSmall, h2FilterSmall + 1, 10000, h2BigBufLen(h2MaxReadFrameSize) - h2FilterHeadroom} {
		f := newH2Filter(&chunkReader{data: in[k:], sizes: []int{333}}, h2DecoderTableSize, h2MaxReadFrameSize, pool)
		if !f.preload(in[:k]) {
			t.Fatalf("preload of %d bytes refused", k)
		}
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("preload of %d bytes: %v %s", k, err, firstDiff(got, want))
		}
	}
	f := newH2Filter(&chunkReader{}, h2DecoderTableSize, h2MaxReadFrameSize, pool)
	if f.preload(in[:h2BigBufLen(h2MaxReadFrameSize)]) || f.w != f.r || f.big != nil {
		t.Fatal("a preload over the pooled buffer's size was taken")
	}
}

func firstDiff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d of %d/%d: got % x, want % x", i, len(got), len(want),
				got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// What the filter makes of a block x/net reads as the request the client
// sent plus two empty host fields, and of a SETTINGS frame the same
// settings in order, last values.
func TestH2FilterOutputParses(t *testing.T) {
	in, _ := filterScript()
	out := filterAll(t, in, testFilterPool(), nil, nil)
	fr := http2.NewFramer(nil, bytes.NewReader(out[len(http2.ClientPreface):]))
	fr.ReadMetaHeaders = hpack.NewDecoder(h2DecoderTableSize, nil)
	fr.SetMaxReadFrameSize(h2MaxReadFrameSize)
	var hosts, settings []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, http2.ErrFrameTooLarge) {
				t.Fatal(err)
			}
			break
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			n := 0
			for _, hf := range f.RegularFields() {
				if hf.Name == "host" && hf.Value == "" {
					n++
				}
			}
			hosts = append(hosts, fmt.Sprint(f.StreamID, ":", n))
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			s := ""
			_ = f.ForeachSetting(func(st http2.Setting) error { s += fmt.Sprint(st.ID, "=", st.Val, " "); return nil })
			settings = append(settings, s)
		}
	}
	if got := strings.Join(hosts, " "); got != "1:0 3:2 5:2 7:0 9:2 11:0 11:2 13:0" {
		t.Errorf("empty host fields per block: %s", got)
	}
	if got := strings.Join(settings, "| "); got != "ENABLE_PUSH=0 INITIAL_WINDOW_SIZE=1000 | INITIAL_WINDOW_SIZE=1 MAX_HEADER_LIST_SIZE=9 ENABLE_PUSH=0 " {
		t.Errorf("settings: %s", got)
	}
}

// In steady state the filter allocates nothing, whatever it does with a
// frame: passing it, rewriting SETTINGS, decoding a block (its fields
// indexed), ending one, holding a large one in a pooled buffer.
func TestH2FilterAllocs(t *testing.T) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	encode := func(fields ...hpack.HeaderField) []byte {
		hb.Reset()
		for _, hf := range fields {
			_ = enc.WriteField(hf)
		}
		return bytes.Clone(hb.Bytes())
	}
	good := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/a"}, {Name: "x-a", Value: "one"}}
	conn := hpack.HeaderField{Name: "connection", Value: "close"}
	big := hpack.HeaderField{Name: "x-big", Value: strings.Repeat("q", 5000), Sensitive: true}
	// The first time, the fields go into the table (the decoder allocates
	// their strings); the round sends them again, as indexes.
	warm := append([]byte(http2.ClientPreface), frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 1, encode(append(good, conn)...))...)
	var round []byte
	for _, fr := range [][]byte{
		frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 3, encode(good...)),
		frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 5, encode(append(good, conn)...)),
		frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 7, encode(append(good, conn, big)...)),
		frameBytes(http2.FrameData, 0, 1, make([]byte, 3000)),
		frameBytes(http2.FrameSettings, 0, 0, settingsPayload(4, 100, 4, 1)),
	} {
		round = append(round, fr...)
	}
	src := &loopReader{data: warm}
	f := newH2Filter(src, h2DecoderTableSize, h2MaxReadFrameSize, testFilterPool())
	p := make([]byte, 16384)
	drain := func() {
		for len(src.data) > 0 || f.out > 0 || f.pass > 0 {
			if _, err := f.Read(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain()
	src.data = round
	drain()
	allocs := testing.AllocsPerRun(100, func() {
		src.data = round
		drain()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round", allocs)
	}
	if f.off {
		t.Fatal("the filter stopped looking")
	}
}

// loopReader yields data, then nothing (0, nil) until refilled.
type loopReader struct{ data []byte }

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// FuzzH2Filter runs arbitrary client bytes (after the preface) through the
// filter: it must not fail, must hand out the same bytes however the
// source splits them and however little the reader asks for, may add at
// most one CONTINUATION per frame, and x/net's framer must read the same
// frames from its output as from its input but for the two changes.
func FuzzH2Filter(f *testing.F) {
	in, _ := filterScript()
	f.Add(in[len(http2.ClientPreface):], uint16(0), uint8(0))
	f.Add(in[len(http2.ClientPreface):len(http2.ClientPreface)+300], uint16(7), uint8(3))
	pool := testFilterPool()
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, read uint8) {
		in := append([]byte(http2.ClientPreface), data...)
		want := filterAll(t, in, pool, nil, nil)
		if max := len(in) + h2PoisonFrameLen*(len(in)/h2FrameHeaderLen+1); len(want) > max {
			t.Fatalf("%d bytes out of %d", len(want), len(in))
		}
		sizes := []int{int(cut)%(len(in)+1) + 1, int(cut)%13 + 1, len(in)}
		reads := []int{int(read)%17 + 1, int(read)%5 + 9}
		if got := filterAll(t, in, pool, sizes, reads); !bytes.Equal(got, want) {
			t.Fatalf("pieces %v, reads %v: %s", sizes, reads, firstDiff(got, want))
		}
		sameFrames(t, in[len(http2.ClientPreface):], want[len(http2.ClientPreface):])
	})
}

// sameFrames checks that x/net's framer reads the same frames from in and
// out, until it fails on either (on both at the same frame), but for the
// filter's changes: a block carrying a forbidden field has two empty host
// fields more, and a SETTINGS frame has each setting once, the same last
// values and the same first invalid one.
func sameFrames(t *testing.T, in, out []byte) {
	t.Helper()
	newFramer := func(b []byte) *http2.Framer {
		fr := http2.NewFramer(nil, bytes.NewReader(b))
		fr.ReadMetaHeaders = hpack.NewDecoder(h2DecoderTableSize, nil)
		fr.SetMaxReadFrameSize(h2MaxReadFrameSize)
		return fr
	}
	fi, fo := newFramer(in), newFramer(out)
	for i := 0; ; i++ {
		a, errA := fi.ReadFrame()
		b, errB := fo.ReadFrame()
		if errA != nil || errB != nil {
			if (errA == nil) != (errB == nil) {
				// x/net's framer checks the first value of a setting
				// only, and the output holds the first invalid one
				// where the input had a valid one before it: the
				// server refuses the input's frame too, when it checks
				// each setting (FLOW_CONTROL_ERROR either way).
				if sa, ok := a.(*http2.SettingsFrame); ok && errB != nil && strings.HasPrefix(settingsView(sa), "invalid ") {
					return
				}
				t.Fatalf("frame %d: input %v (%v), output %v (%v)", i, a, errA, b, errB)
			}
			return
		}
		if a.Header().Type != b.Header().Type || a.Header().StreamID != b.Header().StreamID {
			t.Fatalf("frame %d: input %v, output %v", i, a, b)
		}
		switch a := a.(type) {
		case *http2.MetaHeadersFrame:
			fa, fb := a.Fields, b.(*http2.MetaHeadersFrame).Fields
			bad := false
			te := 0
			for _, hf := range fa {
				switch hf.Name {
				case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
					bad = true
				case "te":
					te++
					bad = bad || te > 1 || (hf.Value != "trailers" && hf.Value != "")
				}
			}
			if bad {
				host := hpack.HeaderField{Name: "host"}
				fa = append(fa[:len(fa):len(fa)], host, host)
			}
			if fmt.Sprint(fa) != fmt.Sprint(fb) {
				t.Fatalf("frame %d: input fields %v (forbidden: %v), output %v", i, a.Fields, bad, fb)
			}
		case *http2.SettingsFrame:
			if sa, sb := settingsView(a), settingsView(b.(*http2.SettingsFrame)); sa != sb {
				t.Fatalf("frame %d: input settings %s, output %s", i, sa, sb)
			}
		case *http2.DataFrame:
			if !bytes.Equal(a.Data(), b.(*http2.DataFrame).Data()) {
				t.Fatalf("frame %d: DATA differs", i)
			}
		}
	}
}

// settingsView is what a SETTINGS frame does: the last value of each
// setting, or the first invalid one.
func settingsView(f *http2.SettingsFrame) string {
	if f.IsAck() {
		return "ack"
	}
	last := map[http2.SettingID]uint32{}
	var invalid string
	_ = f.ForeachSetting(func(s http2.Setting) error {
		if invalid == "" && s.Valid() != nil {
			invalid = s.String()
		}
		last[s.ID] = s.Val
		return nil
	})
	if invalid != "" {
		return "invalid " + invalid
	}
	return fmt.Sprint(last)
}

// BenchmarkH2FilterRequest is the filter's cost for one request header
// frame, its fields indexed (x/net's transport sends a repeated request
// so), read as x/net reads it: the header, then the payload.
func BenchmarkH2FilterRequest(b *testing.B) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "a.test"}, {Name: ":path", Value: "/x"}, {Name: "user-agent", Value: "bench"},
		{Name: "accept-encoding", Value: "gzip"}}
	for _, hf := range fields {
		_ = enc.WriteField(hf)
	}
	warm := append([]byte(http2.ClientPreface), frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 1, hb.Bytes())...)
	hb.Reset()
	for _, hf := range fields {
		_ = enc.WriteField(hf)
	}
	frame := frameBytes(http2.FrameHeaders, h2FlagEndHeaders|0x1, 3, hb.Bytes())
	src := &loopReader{data: warm}
	f := newH2Filter(src, h2DecoderTableSize, h2MaxReadFrameSize, testFilterPool())
	p := make([]byte, 16384)
	read := func() {
		for len(src.data) > 0 || f.out > 0 || f.pass > 0 {
			n := h2FrameHeaderLen
			if f.r != f.w && f.out < h2FrameHeaderLen {
				n = len(p)
			}
			if _, err := f.Read(p[:n]); err != nil {
				b.Fatal(err)
			}
		}
	}
	read()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for range b.N {
		src.data = frame
		read()
	}
}
