package proxy

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/proxy/h1"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
)

// Plugins on both request paths. A route's Chain (Route.Plugins) runs
// right after the route is matched and the request admitted (runPlugins,
// called by the engine's handle and net/http's serve); what it decided is
// applied where each path writes heads:
//   - upstream request: the engine edits the head it wrote
//     (editUpstreamHead), net/http the outgoing header in rewrite;
//   - query: rewritten before the request line is written;
//   - response: the engine edits the head it relays (editHead), net/http
//     the header when the status is written (respWriter.WriteHeader);
//   - an answer of a plugin (401, 429, a preflight) is written instead of
//     proxying, with the response edits.
//
// The framing fields (Content-Length, Transfer-Encoding, Connection) are
// the proxy's: edits of them are ignored. A route without plugins has a
// nil Chain and takes none of these steps.

// runPlugins runs rt's chain on a request; false means a plugin answered
// it (x holds the answer).
func runPlugins(rt *Route, x *plugins.Exchange, r plugins.Request, tls, grpc bool) bool {
	x.Reset()
	return rt.Plugins.Access(x, r, plugins.ProtocolOf(tls, grpc), rt.Service.Name)
}

// framing reports whether name is a field the proxy owns.
func framing(name string) bool {
	switch len(name) {
	case 10:
		return strings.EqualFold(name, "connection")
	case 14:
		return strings.EqualFold(name, "content-length")
	case 17:
		return strings.EqualFold(name, "transfer-encoding")
	}
	return false
}

// guardedFields are head fields whose framing fields edits leave alone.
type guardedFields struct{ f *plugins.Fields }

func (g guardedFields) Get(name string) (string, bool) { return g.f.Get(name) }

func (g guardedFields) Del(name string) {
	if !framing(name) {
		g.f.Del(name)
	}
}

func (g guardedFields) Set(name, value string) {
	if !framing(name) {
		g.f.Set(name, value)
	}
}

func (g guardedFields) Add(name, value string) {
	if !framing(name) {
		g.f.Add(name, value)
	}
}

// guardedHeader is an http.Header under the same rule.
type guardedHeader struct{ h plugins.HTTPHeader }

func (g guardedHeader) Get(name string) (string, bool) { return g.h.Get(name) }

func (g guardedHeader) Del(name string) {
	if !framing(name) {
		g.h.Del(name)
	}
}

func (g guardedHeader) Set(name, value string) {
	if !framing(name) {
		g.h.Set(name, value)
	}
}

func (g guardedHeader) Add(name, value string) {
	if !framing(name) {
		g.h.Add(name, value)
	}
}

// pluginState is the engine client's plugin scratch, reused across its
// requests.
type pluginState struct {
	x      plugins.Exchange
	fields plugins.Fields
	head   []byte // a copy of the head being edited
	query  []byte // the edited query
}

// editHead edits the head dst[start:] (a start line and fields, not yet
// ended) with edits and ends it.
func (ps *pluginState) editHead(dst []byte, start int, edits []plugins.Edit) []byte {
	ps.head = append(ps.head[:0], dst[start:]...)
	head := ps.head
	i := bytes.Index(head, []byte("\r\n"))
	line, rest := head[:i+2], head[i+2:]
	ps.fields = ps.fields[:0]
	for len(rest) > 0 {
		j := bytes.Index(rest, []byte("\r\n"))
		if j < 0 {
			break
		}
		name, value, _ := bytes.Cut(rest[:j], []byte(": "))
		ps.fields = append(ps.fields, plugins.Field{Name: bstr(name), Value: bstr(value)})
		rest = rest[j+2:]
	}
	plugins.Apply(guardedFields{&ps.fields}, edits)
	dst = append(dst[:start], line...)
	for _, f := range ps.fields {
		dst = h1.AppendField(dst, f.Name, f.Value)
	}
	return h1.EndHead(dst)
}

// editAnswer applies the response edits to an answer (head and body)
// the engine built in full.
func (ps *pluginState) editAnswer(out []byte) []byte {
	i := bytes.Index(out, []byte("\r\n\r\n"))
	if i < 0 {
		return out
	}
	ps.query = append(ps.query[:0], out[i+4:]...)
	out = ps.editHead(out[:i+2], 0, ps.x.Down)
	return append(out, ps.query...)
}

// msgNoRoute is Kong's answer to a request no route matched.
const msgNoRoute = "no Route matched with those values"

// noRoute answers a request no route matched on the engine: Kong's 404,
// edited by the global plugins' response phase (Table.Unmatched).
func (c *client) noRoute(t *Table) bool {
	if t.Unmatched == nil {
		return c.reject(http.StatusNotFound, msgNoRoute, c.req.Body != h1.BodyNone)
	}
	x := &c.plug.x
	x.Reset()
	t.Unmatched.Respond(x, (*h1Request)(c), plugins.ProtocolOf(c.tls, false))
	x.Status, x.Message, x.Body = http.StatusNotFound, msgNoRoute, `{"message":"`+msgNoRoute+`"}`+"\n"
	return c.pluginAnswer()
}

// noRoute answers a request no route matched on the net/http path, as
// the engine's noRoute.
func (p *Proxy) noRoute(w http.ResponseWriter, r *http.Request, rs *reqState, start time.Time, t *Table) {
	if t.Unmatched != nil {
		x := p.exchanges.Get().(*plugins.Exchange)
		rs.rw.plug = x // given back by done, after the last write
		x.Reset()
		t.Unmatched.Respond(x, httpInbound{r}, plugins.ProtocolOf(r.TLS != nil, rs.grpc.on))
	}
	p.reject(w, r, rs, start, http.StatusNotFound, msgNoRoute)
}

// h1Request is the engine's client as the plugins' Request; being a
// pointer it converts to the interface without allocating.
type h1Request client

func (h *h1Request) Header(name string) (string, bool)   { return h.in.header(name) }
func (h *h1Request) QueryArg(name string) (string, bool) { return h.in.queryArg(name) }
func (h *h1Request) Method() string                      { return bstr(h.req.Method) }
func (h *h1Request) Repeated(name string, query bool) bool {
	if query {
		_, ok := h.in.queryArgAt(name, 1)
		return ok
	}
	_, ok := h.in.Value(name, 1)
	return ok
}
func (h *h1Request) Path() string     { return h.in.dpath }
func (h *h1Request) ClientIP() string { return h.ip }
func (h *h1Request) Conn() (string, string, uint64, int) {
	ip := ""
	if a, ok := h.nc.LocalAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	return ip, h.port, h.serial, h.reqs
}

// pluginAnswer writes the answer a plugin gave on the engine; it reports
// whether the connection may carry another request.
func (c *client) pluginAnswer() bool {
	x := &c.plug.x
	closing := c.req.Body != h1.BodyNone || c.req.Close || c.s.closing.Load()
	c.ex.status = x.Status
	out := h1.AppendStatusLine(c.out[:0], x.Status, []byte(http.StatusText(x.Status)))
	out = append(out, c.s.date.at(time.Now())...)
	start := 0
	body := x.Body
	if body != "" {
		out = append(out, "Content-Type: application/json; charset=utf-8\r\n"...)
	}
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, '\r', '\n')
	if closing {
		out = append(out, "Connection: close\r\n"...)
	}
	out = c.plug.editHead(out, start, x.Down)
	if string(c.req.Method) != "HEAD" {
		out = append(out, body...)
	}
	c.out = out
	if _, err := c.nc.Write(c.out); err != nil {
		closing = true
	}
	c.unrouted(x.Status)
	return !closing
}

// The net/http request as the plugins' Request.

func (h httpInbound) Header(name string) (string, bool)   { return h.header(name) }
func (h httpInbound) QueryArg(name string) (string, bool) { return h.queryArg(name) }
func (h httpInbound) Method() string                      { return h.r.Method }
func (h httpInbound) Repeated(name string, query bool) bool {
	if query {
		return len(h.r.URL.Query()[name]) > 1
	}
	return len(h.r.Header.Values(name)) > 1
}
func (h httpInbound) Path() string { return h.r.URL.Path }
func (h httpInbound) ClientIP() string {
	ip, _ := h.remoteIP()
	return ip
}
func (h httpInbound) Conn() (string, string, uint64, int) {
	if a, ok := h.r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return a.IP.String(), strconv.Itoa(a.Port), 0, 0
	}
	return "", "", 0, 0
}

// pluginAnswerHTTP writes the answer a plugin gave on the net/http path
// (the response edits apply in WriteHeader); a gRPC request gets it as a
// trailers-only gRPC error, with Kong's status mapping.
func pluginAnswerHTTP(w http.ResponseWriter, x *plugins.Exchange, g *grpcState) {
	if g.on && x.Status != http.StatusOK {
		g.status = kongGRPCStatus(x.Status)
		msg := x.Message
		if msg == "" {
			msg = http.StatusText(x.Status)
		}
		writeGRPCError(w, g.status, msg)
		return
	}
	h := w.Header()
	if x.Body != "" {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(x.Body)))
	w.WriteHeader(x.Status)
	if x.Body != "" {
		_, _ = w.Write([]byte(x.Body))
	}
}

// releasePlugins gives a finished net/http request's plugin state back.
func (p *Proxy) releasePlugins(w *respWriter) {
	if x := w.plug; x != nil {
		w.plug = nil
		p.exchanges.Put(x)
	}
}

// kongGRPCStatus is the gRPC status of an answer of HTTP status s, as
// Kong maps kong.response.exit for gRPC requests.
func kongGRPCStatus(s int) int {
	switch s {
	case 400:
		return 3
	case 401:
		return 16
	case 403:
		return 7
	case 404:
		return 5
	case 409:
		return 6
	case 429:
		return 8
	case 499:
		return 1
	case 500:
		return 13
	case 501:
		return 12
	case 503:
		return 14
	case 504:
		return 4
	}
	switch {
	case s >= 500:
		return 13
	case s >= 400:
		return 3
	}
	return 2
}

// applyDown applies the response edits to a net/http response header.
func applyDown(h http.Header, x *plugins.Exchange) {
	plugins.Apply(guardedHeader{plugins.HTTPHeader(h)}, x.Down)
}

// applyUp applies the upstream request edits of the net/http path.
func applyUp(out *http.Request, x *plugins.Exchange) {
	plugins.Apply(guardedHeader{plugins.HTTPHeader(out.Header)}, x.Up)
	if len(x.Query) > 0 {
		out.URL.RawQuery = string(x.EditQuery(nil, out.URL.RawQuery))
	}
}
