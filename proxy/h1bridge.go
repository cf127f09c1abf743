package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/proxy/h1"
)

// The HTTP/1.1 bridge: an engine request routed to a service that speaks
// HTTP/2 to its targets (h2c, grpc, grpcs) or to a route whose protocols
// are gRPC's. Such requests are few and go through the net/http path
// (Proxy.ServeHTTP, which owns their routing, retries, metrics and access
// line): the parsed head becomes an *http.Request whose body reads the
// client connection, and h1Writer writes the response on it. The client
// connection closes after the response (the bridge does not track where
// the request body ended for a next request).
//
// Before bridging, the request is checked as Kong does (protocolRefusal):
// gRPC over HTTP/1.1 is refused with 426 Upgrade Required (gRPC needs
// HTTP/2 end to end), and a non-gRPC request on a grpc route with 415.

// bridge serves the request routed by t through the net/http path, which
// resolves it against t too.
func (c *client) bridge(t *Table, rt *Route) bool {
	grpc := IsGRPC(bstr(c.req.Get("content-type")))
	if ref := protocolRefusal(rt, grpc, false, false); ref.status != 0 {
		c.ex.status = ref.status
		c.out = appendError(c.out[:0], c.s.date.at(time.Now()), ref.status, ref.msg, true, string(c.req.Method) == "HEAD")
		if ref.status == http.StatusUpgradeRequired {
			// Kong's Upgrade hint, in the head appendError wrote.
			i := bytes.Index(c.out, []byte("\r\n")) + 2
			c.out = append(c.out[:i], append([]byte("Upgrade: HTTP/2\r\n"), c.out[i:]...)...)
			c.out = bytes.Replace(c.out, []byte("Connection: close\r\n"), []byte("Connection: close, Upgrade\r\n"), 1)
		}
		_, _ = c.nc.Write(c.out)
		c.unrouted(ref.status)
		return false
	}
	r, err := c.bridgeRequest()
	if err != nil {
		c.refuse(http.StatusBadRequest)
		return false
	}
	w := &h1Writer{c: c, table: t, head: r.Method == http.MethodHead, header: http.Header{}, http10: c.req.Minor == 0}
	c.s.p.ServeHTTP(w, r)
	w.finish()
	return false
}

// bridgeRequest builds the net/http request of the parsed head; its body
// reads the bytes already buffered, then the connection.
func (c *client) bridgeRequest() (*http.Request, error) {
	req := &c.req
	target := string(req.Target)
	if req.Form == h1.FormAbsolute {
		target = string(req.Path)
		if target == "" || target[0] == '?' {
			target = "/" + target
		}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(req.Fields))
	for _, f := range req.Fields {
		k := http.CanonicalHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
	host := string(req.Host)
	if req.Form == h1.FormAbsolute {
		host = string(req.Authority)
	}
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.nc.LocalAddr())
	r := (&http.Request{
		Method: string(req.Method), URL: u, RequestURI: target, Proto: "HTTP/1." + strconv.Itoa(int(req.Minor)),
		ProtoMajor: 1, ProtoMinor: int(req.Minor), Header: h, Host: host, RemoteAddr: c.nc.RemoteAddr().String(),
		ContentLength: -1, Body: http.NoBody, Close: true,
	}).WithContext(ctx)
	var src io.Reader = io.MultiReader(bytes.NewReader(c.buf[c.next:c.w]), c.nc)
	if req.Expect100 {
		src = &continueReader{r: src, c: c.nc}
	}
	switch req.Body {
	case h1.BodyLength:
		r.ContentLength = req.ContentLength
		r.Body = io.NopCloser(io.LimitReader(src, req.ContentLength))
	case h1.BodyChunked:
		r.Body = io.NopCloser(httputil.NewChunkedReader(bufio.NewReader(src)))
		r.TransferEncoding = []string{"chunked"}
		h.Del("Transfer-Encoding")
	default:
		r.ContentLength = 0
	}
	return r, nil
}

// continueReader sends "100 Continue" before the first read of a body
// the client waits to send.
type continueReader struct {
	r    io.Reader
	c    net.Conn
	sent bool
}

func (cr *continueReader) Read(p []byte) (int, error) {
	if !cr.sent {
		cr.sent = true
		if _, err := io.WriteString(cr.c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return 0, err
		}
	}
	return cr.r.Read(p)
}

// h1Writer is an http.ResponseWriter writing HTTP/1.1 on the engine's
// client connection: chunked (with trailers) unless the handler set a
// Content-Length, always closing the connection after the response.
type h1Writer struct {
	c       *client
	table   *Table // the table the engine routed the request by
	header  http.Header
	head    bool // HEAD: no body
	http10  bool // the client speaks HTTP/1.0: no chunked, body until close
	wrote   bool
	chunked bool
	err     error
	buf     []byte
}

func (w *h1Writer) Header() http.Header { return w.header }

func (w *h1Writer) WriteHeader(code int) {
	if w.wrote || w.err != nil {
		return
	}
	b := h1.AppendStatusLine(w.buf[:0], code, []byte(http.StatusText(code)))
	if code >= 100 && code < 200 {
		if code == http.StatusSwitchingProtocols {
			return // no upgrade through the bridge
		}
		b = appendHeaderLines(b, w.header, nil)
		w.write(h1.EndHead(b))
		return
	}
	w.wrote = true
	var trailers []string
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				trailers = append(trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	if len(trailers) > 0 && !w.http10 {
		w.header.Del("Content-Length") // trailers need chunked
	}
	_, hasLen := w.header["Content-Length"]
	noBody := w.head || code == http.StatusNoContent || code == http.StatusNotModified
	w.chunked = !hasLen && !noBody && !w.http10
	b = appendHeaderLines(b, w.header, trailers)
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if len(trailers) > 0 {
			b = append(b, "Trailer: "+strings.Join(trailers, ", ")+"\r\n"...)
		}
	}
	b = append(b, "Connection: close\r\n"...)
	w.buf = h1.EndHead(b)
	w.write(w.buf)
	w.c.ex.status = code
}

// appendHeaderLines writes the fields of h but the framing ones and the
// trailers.
func appendHeaderLines(b []byte, h http.Header, trailers []string) []byte {
	for k, vs := range h {
		switch k {
		case "Transfer-Encoding", "Connection", "Trailer", "Keep-Alive":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || containsFold(trailers, k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ':', ' ')
			b = append(b, v...)
			b = append(b, '\r', '\n')
		}
	}
	return b
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (w *h1Writer) write(b []byte) {
	if w.err == nil {
		_, w.err = w.c.nc.Write(b)
	}
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head || len(p) == 0 {
		return len(p), nil
	}
	if w.chunked {
		b := strconv.AppendInt(w.buf[:0], int64(len(p)), 16)
		b = append(b, '\r', '\n')
		b = append(b, p...)
		w.buf = append(b, '\r', '\n')
		w.write(w.buf)
	} else {
		w.write(p)
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Flush is a no-op: every Write goes to the connection at once.
func (w *h1Writer) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
}

// finish ends the body: the last chunk and the trailers.
func (w *h1Writer) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.chunked || w.err != nil {
		return
	}
	b := append(w.buf[:0], "0\r\n"...)
	for k, vs := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok {
			continue
		}
		for _, v := range vs {
			b = append(b, name+": "+v+"\r\n"...)
		}
	}
	for _, k := range w.header["Trailer"] {
		for _, n := range strings.Split(k, ",") {
			n = http.CanonicalHeaderKey(strings.TrimSpace(n))
			for _, v := range w.header[n] {
				b = append(b, n+": "+v+"\r\n"...)
			}
		}
	}
	w.buf = append(b, '\r', '\n')
	w.write(w.buf)
}
