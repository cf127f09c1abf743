package h1

import (
	"reflect"
	"testing"
)

var validRequests = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"\r\nGET /x?y HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\n\r\n",
	"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
	"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"GET http://a:1/p HTTP/1.1\r\nHost: a:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
}

var validResponses = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n",
	"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nConnection: x\r\nX: 1\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\n",
}

// view is the comparable content of a parsed request.
type view struct {
	N                               int
	Method, Target, Host            string
	Minor                           uint8
	Fields                          [][2]string
	Hop, TE                         FieldSet
	CL                              int64
	Chunked, Close, Expect          bool
	Upgrade                         string
	Body                            BodyKind
	Form                            TargetForm
	Scheme, Authority, Path, Reason string
	Status                          int
}

func fieldsView(h *Header) [][2]string {
	var fs [][2]string
	for _, f := range h.Fields {
		fs = append(fs, [2]string{string(f.Name), string(f.Value)})
	}
	return fs
}

func reqView(n int, r *Request) view {
	return view{N: n, Method: string(r.Method), Target: string(r.Target), Host: string(r.Host), Minor: r.Minor,
		Fields: fieldsView(&r.Header), Hop: r.Hop, TE: r.TransferEncoding, CL: r.ContentLength, Chunked: r.Chunked,
		Close: r.Close, Expect: r.Expect100, Upgrade: string(r.Upgrade), Body: r.Body, Form: r.Form,
		Scheme: string(r.Scheme), Authority: string(r.Authority), Path: string(r.Path)}
}

func respView(n int, r *Response) view {
	return view{N: n, Minor: r.Minor, Fields: fieldsView(&r.Header), Hop: r.Hop, TE: r.TransferEncoding,
		CL: r.ContentLength, Chunked: r.Chunked, Close: r.Close, Upgrade: string(r.Upgrade), Body: r.Body,
		Reason: string(r.Reason), Status: r.Status}
}

// Every prefix of a valid head is incomplete; fed growing prefixes (each
// in a fresh copy, as a reader that reallocates would), one Request ends
// with the same result as a single parse; and so does a split into two
// reads at every point.
func TestRequestEverySplit(t *testing.T) {
	for _, raw := range validRequests {
		full := []byte(raw + "BODY")
		var once Request
		n, err := ParseRequest(full, &once, nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		want := reqView(n, &once)

		var r Request
		for k := 0; k < len(raw); k++ {
			buf := append([]byte(nil), full[:k]...)
			if _, err := ParseRequest(buf, &r, nil); err != ErrIncomplete {
				t.Fatalf("%q: prefix of %d: %v, want ErrIncomplete", raw, k, err)
			}
		}
		n, err = ParseRequest(append([]byte(nil), full...), &r, nil)
		if err != nil {
			t.Fatalf("%q: after byte-at-a-time: %v", raw, err)
		}
		if got := reqView(n, &r); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: byte at a time\n got %+v\nwant %+v", raw, got, want)
		}

		for k := 0; k < len(raw); k++ {
			var r Request
			if _, err := ParseRequest(full[:k], &r, nil); err != ErrIncomplete {
				t.Fatalf("%q: split %d: %v", raw, k, err)
			}
			n, err := ParseRequest(full, &r, nil)
			if err != nil {
				t.Fatalf("%q: split %d: %v", raw, k, err)
			}
			if got := reqView(n, &r); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: split %d\n got %+v\nwant %+v", raw, k, got, want)
			}
		}
	}
}

func TestResponseEverySplit(t *testing.T) {
	for _, raw := range validResponses {
		full := []byte(raw + "BODY")
		var once Response
		n, err := ParseResponse(full, &once, []byte("GET"), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		want := respView(n, &once)
		var r Response
		for k := 0; k < len(raw); k++ {
			if _, err := ParseResponse(append([]byte(nil), full[:k]...), &r, []byte("GET"), nil); err != ErrIncomplete {
				t.Fatalf("%q: prefix of %d: %v", raw, k, err)
			}
		}
		n, err = ParseResponse(full, &r, []byte("GET"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := respView(n, &r); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: byte at a time\n got %+v\nwant %+v", raw, got, want)
		}
		for k := 0; k < len(raw); k++ {
			var r Response
			if _, err := ParseResponse(full[:k], &r, []byte("GET"), nil); err != ErrIncomplete {
				t.Fatalf("%q: split %d: %v", raw, k, err)
			}
			n, err := ParseResponse(full, &r, []byte("GET"), nil)
			if err != nil || !reflect.DeepEqual(respView(n, &r), want) {
				t.Fatalf("%q: split %d: %v", raw, k, err)
			}
		}
	}
}

// The resumed search applies the limits and the line-ending rule as a
// single parse does, so a slow sender meets the same refusal, before the
// head ends: none of these heads is ever complete.
func TestIncrementalRefusals(t *testing.T) {
	small := &Limits{MaxRequestLine: 32, MaxHeaderBytes: 64, MaxFields: 3}
	tests := []struct {
		desc, raw string
		status    int
	}{
		{"long request line", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", 414},
		{"long header section", "GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 431},
		{"long field line", "GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\n", 431},
		{"bare LF in a later line", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\nB: 1\r\n", 400},
		{"bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n", 400},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var r Request
			var err error
			for k := 1; k <= len(tc.raw); k++ {
				_, err = ParseRequest([]byte(tc.raw[:k]), &r, small)
				if err != ErrIncomplete {
					break
				}
			}
			if statusOf(err) != tc.status {
				t.Fatalf("got %v, want %d", err, tc.status)
			}
			if _, err := ParseRequest([]byte(tc.raw), new(Request), small); statusOf(err) != tc.status {
				t.Fatalf("single parse: %v, want %d", err, tc.status)
			}
		})
	}
}

// Reset forgets an interrupted parse: the next buffer is a new message.
func TestResetAfterIncomplete(t *testing.T) {
	var r Request
	if _, err := ParseRequest([]byte("GET /first HTTP/1.1\r\nHo"), &r, nil); err != ErrIncomplete {
		t.Fatal(err)
	}
	r.Reset()
	raw := []byte("GET /second HTTP/1.1\r\nHost: b\r\n\r\n")
	n, err := ParseRequest(raw, &r, nil)
	if err != nil || n != len(raw) || string(r.Target) != "/second" {
		t.Fatalf("%d %v %q", n, err, r.Target)
	}
}
