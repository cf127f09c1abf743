package h1

import (
	"bytes"
	"strings"
	"testing"
)

// scanAll runs a fresh scanner over body in one call.
func scanAll(body string, keep bool) (data []byte, n int, s *ChunkedScanner, err error) {
	s = &ChunkedScanner{KeepTrailer: keep}
	data, n, err = s.Decode(nil, []byte(body))
	return data, n, s, err
}

var validChunked = []struct {
	desc, body, data string
	trailer          []string // "Name: value"
}{
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", nil},
	{"no data", "0\r\n\r\n", "", nil},
	{"several chunks, hex sizes", "3\r\nabc\r\na\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n0\r\n\r\n", "abc0123456789ABCDEFGHIJ", nil},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", nil},
	{"data holding CRLF and NUL", "4\r\n\r\n\x00\n\r\n0\r\n\r\n", "\r\n\x00\n", nil},
	{"extensions", "5;a\r\nhello\r\n1;a=b;c=\"q \\\" d\"\r\n!\r\n0;last\r\n\r\n", "hello!", nil},
	{"extension with BWS", "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello", nil},
	{"trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Empty:\r\nx-t:  v  \r\n\r\n", "hello", []string{"X-Sum: abc", "X-Empty: ", "x-t: v"}},
}

func TestChunkedValid(t *testing.T) {
	for _, tc := range validChunked {
		t.Run(tc.desc, func(t *testing.T) {
			data, n, s, err := scanAll(tc.body+"NEXT", true)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.body) || !s.Done() || string(data) != tc.data || s.DataLen() != int64(len(tc.data)) {
				t.Fatalf("n=%d/%d done=%v data=%q", n, len(tc.body), s.Done(), data)
			}
			var tr []string
			for _, f := range s.Trailer(nil) {
				tr = append(tr, string(f.Name)+": "+string(f.Value))
			}
			if strings.Join(tr, "|") != strings.Join(tc.trailer, "|") {
				t.Fatalf("trailer %q, want %q", tr, tc.trailer)
			}
			if m, err := s.Scan([]byte("more")); m != 0 || err != nil {
				t.Fatalf("Scan after Done = %d, %v", m, err)
			}
		})
	}
}

func TestChunkedRefusals(t *testing.T) {
	tests := []struct{ desc, body string }{
		{"non-hex size", "g\r\n"},
		{"empty size", "\r\n"},
		{"size with sign", "+5\r\nhello\r\n0\r\n\r\n"},
		{"size with 0x", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"size too large", "1000000000000000\r\n"},
		{"size far too large", "ffffffffffffffffffff\r\n"},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
		{"CR not followed by LF after size", "5\rhello\r\n0\r\n\r\n"},
		{"whitespace after size without extension", "5 \r\nhello\r\n0\r\n\r\n"},
		{"whitespace before size", " 5\r\nhello\r\n"},
		{"data longer than size", "5\r\nhello!\r\n0\r\n\r\n"},
		{"missing CRLF after data", "5\r\nhello0\r\n\r\n"},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n"},
		{"other byte instead of CR after data", "5\r\nhelloX\n0\r\n\r\n"},
		{"empty extension name", "5;\r\nhello\r\n"},
		{"extension name not a token", "5;a@b\r\nhello\r\n"},
		{"extension with empty value", "5;a=\r\nhello\r\n"},
		{"extension value not a token", "5;a=b@c\r\nhello\r\n"},
		{"unterminated quoted value", "5;a=\"b\r\nhello\r\n"},
		{"control byte in quoted value", "5;a=\"\x01\"\r\nhello\r\n"},
		{"junk after quoted value", "5;a=\"b\"c\r\nhello\r\n"},
		{"whitespace after extension value", "5;a=b \r\nhello\r\n"},
		{"chunk line too long", "5;" + strings.Repeat("a", MaxChunkLine) + "\r\nhello\r\n"},
		{"zero padding beyond the line limit", strings.Repeat("0", MaxChunkLine+1) + "5\r\nhello\r\n"},
		{"bare LF ending the body", "0\r\n\n"},
		{"CR not followed by LF ending the body", "0\r\n\rX"},
		{"trailer obs-fold", "0\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"trailer space before colon", "0\r\nX-A : 1\r\n\r\n"},
		{"trailer without colon", "0\r\nX-A\r\n\r\n"},
		{"trailer NUL in value", "0\r\nX-A: \x00\r\n\r\n"},
		{"trailer bare LF", "0\r\nX-A: 1\n\r\n"},
		{"trailer name not a token", "0\r\nX(A): 1\r\n\r\n"},
		{"trailer section too large", "0\r\nX-A: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n\r\n"},
		{"too many trailer fields", "0\r\n" + strings.Repeat("X: 1\r\n", DefaultMaxFields+1) + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, n, s, err := scanAll(tc.body, false)
			if statusOf(err) != 400 {
				t.Fatalf("n=%d done=%v err=%v, want a 400 refusal", n, s.Done(), err)
			}
			if n > len(tc.body) {
				t.Fatalf("n = %d > %d", n, len(tc.body))
			}
		})
	}
}

func TestChunkedLimitsAndReset(t *testing.T) {
	var s ChunkedScanner
	s.Reset(&Limits{MaxFields: 1})
	if _, err := s.Scan([]byte("0\r\nA: 1\r\nB: 2\r\n\r\n")); statusOf(err) != 400 {
		t.Fatalf("two trailers over a limit of one: %v", err)
	}
	s.Reset(nil)
	if n, err := s.Scan([]byte("0\r\n\r\n")); err != nil || n != 5 || !s.Done() {
		t.Fatalf("after Reset: %d %v", n, err)
	}
	// The largest size accepted: 2^60-1.
	s.Reset(nil)
	if _, err := s.Scan([]byte("fffffffffffffff\r\nabc")); err != nil {
		t.Fatalf("2^60-1: %v", err)
	}
}

// Every split of a valid body into two reads, and a byte-at-a-time feed,
// give the same body length, data and trailers as one read.
func TestChunkedEverySplit(t *testing.T) {
	for _, tc := range validChunked {
		t.Run(tc.desc, func(t *testing.T) {
			in := []byte(tc.body + "NEXT")
			for k := 0; k <= len(in); k++ {
				s := ChunkedScanner{KeepTrailer: true}
				d, n1, err := s.Decode(nil, in[:k])
				if err != nil {
					t.Fatalf("split %d: first part: %v", k, err)
				}
				n := n1
				if !s.Done() {
					if n1 != k {
						t.Fatalf("split %d: first part consumed %d", k, n1)
					}
					var n2 int
					d, n2, err = s.Decode(d, in[k:])
					if err != nil {
						t.Fatalf("split %d: second part: %v", k, err)
					}
					n += n2
				}
				if n != len(tc.body) || string(d) != tc.data || !s.Done() {
					t.Fatalf("split %d: n=%d data=%q done=%v", k, n, d, s.Done())
				}
				if got := len(s.Trailer(nil)); got != len(tc.trailer) {
					t.Fatalf("split %d: %d trailers", k, got)
				}
			}
			var s ChunkedScanner
			var d []byte
			total := 0
			for i := 0; i < len(in) && !s.Done(); i++ {
				var n int
				var err error
				d, n, err = s.Decode(d, in[i:i+1])
				if err != nil {
					t.Fatalf("byte %d: %v", i, err)
				}
				total += n
			}
			if total != len(tc.body) || string(d) != tc.data {
				t.Fatalf("byte at a time: n=%d data=%q", total, d)
			}
		})
	}
}

// Scan counts the body bytes of a chunked body followed by another message,
// so the engine can forward exactly buf[:n].
func TestChunkedForwardsRawBytes(t *testing.T) {
	body := "4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n"
	next := "GET / HTTP/1.1\r\n"
	var s ChunkedScanner
	var out bytes.Buffer
	in := []byte(body + next)
	for off := 0; off < len(in) && !s.Done(); off += 3 {
		p := in[off:min(off+3, len(in))]
		n, err := s.Scan(p)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(p[:n])
	}
	if out.String() != body {
		t.Fatalf("forwarded %q", out.String())
	}
}
