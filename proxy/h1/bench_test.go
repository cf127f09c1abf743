package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
)

// A keep-alive GET with ten fields, as a browser behind an API gateway sends.
const typicalGET = "GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=abcdef0123456789abcdef; theme=dark\r\n" +
	"Referer: https://app.example.com/dashboard\r\n" +
	"X-Request-Id: 7f3c2a1e-9b4d-4e8f-a6c5-1d2e3f4a5b6c\r\n" +
	"Connection: keep-alive\r\n" +
	"Cache-Control: no-cache\r\n" +
	"\r\n"

const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Date: Tue, 15 Jul 2025 10:00:00 GMT\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Content-Length: 1234\r\n" +
	"Server: upstream\r\n" +
	"Cache-Control: private, max-age=0\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"X-Request-Id: 7f3c2a1e-9b4d-4e8f-a6c5-1d2e3f4a5b6c\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

// chunkedBody is 64 KiB of data in 4 KiB chunks, with a trailer.
func chunkedBody() []byte {
	var b bytes.Buffer
	chunk := strings.Repeat("x", 4096)
	for i := 0; i < 16; i++ {
		b.WriteString("1000\r\n" + chunk + "\r\n")
	}
	b.WriteString("0\r\nX-Checksum: abc\r\n\r\n")
	return b.Bytes()
}

func TestZeroAllocs(t *testing.T) {
	req := []byte(typicalGET)
	var r Request
	if _, err := ParseRequest(req, &r, nil); err != nil { // warms the Fields capacity
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { ParseRequest(req, &r, nil) }); a != 0 {
		t.Errorf("ParseRequest: %v allocs", a)
	}
	// Resuming after ErrIncomplete allocates nothing either.
	half := req[:len(req)/2]
	if a := testing.AllocsPerRun(100, func() {
		r.Reset()
		ParseRequest(half, &r, nil)
		ParseRequest(req, &r, nil)
	}); a != 0 {
		t.Errorf("resumed ParseRequest: %v allocs", a)
	}
	resp := []byte(typicalResponse)
	var rs Response
	ParseResponse(resp, &rs, []byte("GET"), nil)
	if a := testing.AllocsPerRun(100, func() { ParseResponse(resp, &rs, []byte("GET"), nil) }); a != 0 {
		t.Errorf("ParseResponse: %v allocs", a)
	}
	body := chunkedBody()
	var s ChunkedScanner
	if a := testing.AllocsPerRun(100, func() {
		s.Reset(nil)
		for off := 0; off < len(body); off += 1000 {
			s.Scan(body[off:min(off+1000, len(body))])
		}
	}); a != 0 || !s.Done() {
		t.Errorf("ChunkedScanner.Scan: %v allocs, done %v", a, s.Done())
	}
	dst := make([]byte, 0, 4096)
	xff := []byte("10.0.0.1")
	if a := testing.AllocsPerRun(100, func() {
		b := r.AppendHead(dst[:0], r.Path, r.Hop)
		b = AppendField(b, "X-Forwarded-For", xff)
		b = AppendField(b, "X-Forwarded-Proto", "http")
		EndHead(b)
	}); a != 0 {
		t.Errorf("AppendHead: %v allocs", a)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	raw := []byte(typicalGET)
	b.Run("h1", func(b *testing.B) {
		var r Request
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := ParseRequest(raw, &r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		rd := bytes.NewReader(raw)
		br := bufio.NewReader(rd)
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			rd.Reset(raw)
			br.Reset(rd)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkParseResponse(b *testing.B) {
	raw := []byte(typicalResponse)
	b.Run("h1", func(b *testing.B) {
		var r Response
		get := []byte("GET")
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := ParseResponse(raw, &r, get, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		rd := bytes.NewReader(raw)
		br := bufio.NewReader(rd)
		req := &http.Request{Method: "GET"}
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			rd.Reset(raw)
			br.Reset(rd)
			if _, err := http.ReadResponse(br, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkChunked(b *testing.B) {
	body := chunkedBody()
	b.Run("h1-scan", func(b *testing.B) {
		var s ChunkedScanner
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			s.Reset(nil)
			for off := 0; off < len(body); off += 16 << 10 {
				if _, err := s.Scan(body[off:min(off+16<<10, len(body))]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("httputil-decode", func(b *testing.B) {
		rd := bytes.NewReader(body)
		buf := make([]byte, 16<<10)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			rd.Reset(body)
			if _, err := io.CopyBuffer(io.Discard, httputil.NewChunkedReader(rd), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendHead(b *testing.B) {
	var r Request
	if _, err := ParseRequest([]byte(typicalGET), &r, nil); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	xff := []byte("10.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		d := r.AppendHead(dst[:0], r.Path, r.Hop)
		d = AppendField(d, "X-Forwarded-For", xff)
		d = AppendField(d, "X-Forwarded-Proto", "http")
		dst = EndHead(d)
	}
}
