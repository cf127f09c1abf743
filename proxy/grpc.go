package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outrigger-gw/outrigger/upstream"
)

// gRPC over the net/http path.
//
// A request is gRPC when its Content-Type is application/grpc or
// application/grpc+<codec> (application/grpc-web is not: it is plain
// HTTP). For a gRPC request:
//   - Errors the proxy produces are gRPC errors: HTTP 200, Content-Type
//     application/grpc, grpc-status and grpc-message in a trailers-only
//     response (grpcCodeOf maps the HTTP status the request would get).
//   - Streamed responses (no Content-Length, as gRPC's) are flushed after
//     every write, so no message is held back; a trailers-only response
//     is relayed as one HEADERS frame ending the stream (never split by
//     a flush, which would hide its status from the client).
//   - The grpc-status of the response (trailers, or the headers of a
//     trailers-only response) is the request's outcome: it feeds the
//     grpc_status metric, the passive health checks (Outcome.GRPC), the
//     rollout error rates (grpcServerError) and retries.
//   - A trailers-only UNAVAILABLE is retried on another target when the
//     method is listed in the service's GRPCIdempotent and the request
//     body sent so far fits the replay buffer (grpcReplayLimit); a target
//     that could not be connected to is retried for any method.
//   - grpc-timeout sets the request's deadline; each attempt sends the time
//     left. With an HTTP/2 upstream the service's read and write timeouts
//     bound every gap between two reads or writes of the stream.

// gRPC status codes the proxy uses.
const (
	grpcOK                = 0
	grpcCanceled          = 1
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcDataLoss          = 15
)

// grpcReplayLimit bounds the request body kept to resend an idempotent
// gRPC call: beyond it the call is not retried once it was sent.
const grpcReplayLimit = 64 << 10

// IsGRPC reports whether a Content-Type value is gRPC's.
func IsGRPC(ct string) bool {
	const p = "application/grpc"
	if len(ct) < len(p) || !strings.EqualFold(ct[:len(p)], p) {
		return false
	}
	return len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';'
}

// parseGRPCTimeout parses a grpc-timeout value: at most 8 digits and a
// unit (H, M, S, m, u, n).
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// encodeGRPCTimeout writes d (positive) as a grpc-timeout value, in the
// finest unit that fits 8 digits.
func encodeGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	const max = 99999999
	for _, u := range []struct {
		d time.Duration
		c string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := (d + u.d - 1) / u.d; v <= max {
			return strconv.FormatInt(int64(v), 10) + u.c
		}
	}
	return strconv.FormatInt(int64(min((d+time.Hour-1)/time.Hour, max)), 10) + "H"
}

// grpcCodeOf maps the HTTP status of an error the proxy answers to the
// gRPC status it sends instead.
func grpcCodeOf(status int) int {
	switch status {
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return grpcResourceExhausted
	case 499:
		return grpcCanceled
	}
	return grpcInternal
}

// writeGRPCError answers a gRPC request with a trailers-only error.
func writeGRPCError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcPercentEncode(msg))
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
}

// grpcPercentEncode encodes a grpc-message value (gRPC over HTTP/2:
// printable ASCII but '%' as is, everything else percent-encoded).
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)) + strings.ToUpper(strconv.FormatUint(uint64(c)&15, 16)))
	}
	return b.String()
}

// grpcServerError reports whether a gRPC status counts as a failure of
// the target for rollout error rates: the codes gRPC's HTTP mapping
// makes 5xx (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
// UNAVAILABLE, DATA_LOSS).
func grpcServerError(code int) bool {
	switch code {
	case grpcUnknown, grpcDeadlineExceeded, grpcUnimplemented, grpcInternal, grpcUnavailable, grpcDataLoss:
		return true
	}
	return false
}

// grpcStatusLabel is the metric label of a gRPC status: "0".."16", or
// "other" (so a misbehaving target cannot grow the series).
func grpcStatusLabel(code int) string {
	if code >= 0 && code <= 16 {
		return strconv.Itoa(code)
	}
	return "other"
}

// grpcStatusOf parses a grpc-status value (-1 when absent or invalid).
func grpcStatusOf(h http.Header) int {
	v := h.Get("Grpc-Status")
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return grpcUnknown
	}
	return n
}

// GRPCMethodMatch reports whether a gRPC method path ("/pkg.Service/Method")
// is listed: an entry is a full method or "/pkg.Service/*" for every
// method of a service.
func GRPCMethodMatch(list []string, path string) bool {
	for _, m := range list {
		if m == path || strings.HasSuffix(m, "/*") && strings.HasPrefix(path, m[:len(m)-1]) {
			return true
		}
	}
	return false
}

// grpcState is the gRPC part of a reqState.
type grpcState struct {
	on       bool
	deadline time.Time // from grpc-timeout; zero for none
	status   int       // the response's grpc-status; -1 until known
	replay   *replayBody
	// body is the current attempt's request body: the reqState's for the
	// first, a new one for each replay, as an earlier attempt's transport
	// may go on reading its own body after its RoundTrip returned.
	body *countingBody
	// pending is the attempt whose outcome waits for the trailers.
	pending struct {
		ep   *upstream.Endpoint
		t0   time.Time
		resp *http.Response
		done bool
	}
}

// pastDeadline reports whether a gRPC call with a deadline is past it at
// now: whatever ended an attempt then (our timer, or the target resetting
// the stream on its own copy of the deadline, whichever came first), the
// call's status is DEADLINE_EXCEEDED, as its client's own timer says.
func (g *grpcState) pastDeadline(now time.Time) bool {
	return g.on && !g.deadline.IsZero() && !now.Before(g.deadline)
}

// end settles a streamed gRPC response: rerr is how reading its body
// ended (io.EOF when whole). The status comes from the trailers; a broken
// stream is UNAVAILABLE (or DEADLINE_EXCEEDED when our timer cut it), a
// client that went away is CANCELLED and not held against the target.
func (rs *reqState) grpcEnd(inCtx context.Context, rerr error) {
	g := &rs.grpc
	pd := &g.pending
	if pd.done || pd.resp == nil {
		return
	}
	pd.done = true
	code := -1
	switch {
	case rerr == io.EOF:
		if code = grpcStatusOf(pd.resp.Trailer); code < 0 {
			code = grpcInternal // a stream ended without a status
		}
	case inCtx.Err() != nil, rerr == errBodyClosed:
		// The client went away, or its side failed: not the target's doing.
		g.status = grpcCanceled
		return
	case isTimeout(rerr), g.pastDeadline(time.Now()):
		code = grpcDeadlineExceeded
	default:
		code = grpcUnavailable
	}
	g.status = code
	now := time.Now()
	rs.up.Report(pd.ep, upstream.Outcome{Status: pd.resp.StatusCode, GRPC: true, GRPCStatus: code, Duration: now.Sub(pd.t0), At: now})
}

// replayBody keeps a request body of at most grpcReplayLimit bytes so a
// retry can send it again. Each attempt reads through its own handle,
// which replays what was read so far and then reads on from the client.
// Reads of the client's body are serialised: a handle of an earlier
// attempt (whose transport may still be reading) that gets bytes records
// them for the current one, and fails once it is no longer current. A
// body grown over the limit is never replayed.
type replayBody struct {
	src    io.ReadCloser
	readMu sync.Mutex // serialises reads of src (taken before mu)
	mu     sync.Mutex // guards everything below; never held while reading src
	rec    []byte
	// over: more than grpcReplayLimit was read; no replay is possible.
	over     bool
	recorded int   // bytes read from src
	eof      bool  // src returned io.EOF
	srcErr   error // src failed otherwise
	gen      int
}

type replayHandle struct {
	b   *replayBody
	gen int
	pos int // next byte of rec to replay
}

var (
	errBodyMoved = errors.New("request body moved to another attempt")
	errBodyLost  = errors.New("request body too large to send again")
)

// first returns the first attempt's body.
func (b *replayBody) first() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &replayHandle{b: b, gen: b.gen}
}

// again returns the body of the next attempt; ok is false when the body
// cannot be sent again (over the limit).
func (b *replayBody) again() (io.ReadCloser, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return nil, false
	}
	b.gen++
	return &replayHandle{b: b, gen: b.gen}, true
}

func (h *replayHandle) Read(p []byte) (int, error) {
	b := h.b
	b.readMu.Lock()
	defer b.readMu.Unlock()
	b.mu.Lock()
	switch {
	case h.gen != b.gen:
		b.mu.Unlock()
		return 0, errBodyMoved
	case !b.over && h.pos < len(b.rec):
		n := copy(p, b.rec[h.pos:])
		h.pos += n
		b.mu.Unlock()
		return n, nil
	case h.pos < b.recorded:
		b.mu.Unlock()
		return 0, errBodyLost
	case b.eof:
		b.mu.Unlock()
		return 0, io.EOF
	case b.srcErr != nil:
		err := b.srcErr
		b.mu.Unlock()
		return 0, err
	}
	b.mu.Unlock()
	n, err := b.src.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recorded += n
	if !b.over {
		if len(b.rec)+n > grpcReplayLimit {
			b.over, b.rec = true, nil
		} else {
			b.rec = append(b.rec, p[:n]...)
		}
	}
	if h.gen == b.gen {
		h.pos = b.recorded
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.srcErr = err
	}
	return n, err
}

// Close is a no-op: the server closes the real body.
func (h *replayHandle) Close() error { return nil }

// errBodyClosed ends a gRPC response whose body was closed before its end
// (the client side failed while it was being copied).
var errBodyClosed = errors.New("response body closed before its end")

// refusal is an answer to a request its route or service cannot carry.
type refusal struct {
	status int // 0: none
	msg    string
	// grpc, when set, is the gRPC status of a gRPC error.
	grpc int
}

// protocolRefusal checks a routed request against the route's protocols
// and the service's, as Kong: a grpc/grpcs route answers a non-gRPC
// request 415 and a gRPC request over HTTP/1.x 426 (with Upgrade:
// HTTP/2); a grpcs-only route answers gRPC without TLS with CANCELLED
// ("gRPC request matched gRPCs route"); a grpc or grpcs service answers a
// gRPC request over HTTP/1.x 426.
func protocolRefusal(rt *Route, grpc, h2, tls bool) refusal {
	svcGRPC := rt.Service.Protocol == ProtoGRPC || rt.Service.Protocol == ProtoGRPCS
	switch {
	case rt.GRPC && !grpc:
		return refusal{status: http.StatusUnsupportedMediaType, msg: "Non-gRPC request matched gRPC route"}
	case (rt.GRPC || svcGRPC) && grpc && !h2:
		return refusal{status: http.StatusUpgradeRequired, msg: "Please use HTTP2 protocol"}
	case rt.GRPCSOnly && !tls:
		return refusal{status: http.StatusOK, msg: "gRPC request matched gRPCs route", grpc: grpcCanceled}
	}
	return refusal{}
}

func (rf refusal) write(w http.ResponseWriter) {
	switch rf.status {
	case http.StatusOK:
		writeGRPCError(w, rf.grpc, rf.msg)
	case http.StatusUpgradeRequired:
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "HTTP/2")
		fallthrough
	default:
		writeError(w, rf.status, rf.msg)
	}
}

// roundTripGRPC sends a gRPC call: retries on another target when the
// connection failed (any method, nothing was sent) or when a target
// answered a trailers-only UNAVAILABLE to an idempotent method whose
// request body could be kept; per-stream timers with an HTTP/2 upstream.
func (t roundTripper) roundTripGRPC(req *http.Request, rs *reqState) (*http.Response, error) {
	svc := rs.route.Service
	tr, _ := svc.Transport.(*Transport)
	idem := GRPCMethodMatch(svc.GRPCIdempotent, req.URL.Path)
	// rs.body counts what the transport read: a body partly sent is never
	// retried, except by replay (idempotent methods).
	hasBody := req.Body != nil && req.Body != http.NoBody
	rs.grpc.body = &rs.body
	if hasBody {
		if idem {
			rs.grpc.replay = &replayBody{src: req.Body}
			rs.body.rc = rs.grpc.replay.first()
		} else {
			rs.body.rc = req.Body
		}
		req.Body = &rs.body
	}
	inCtx := req.Context()
	pol := rs.up.RetryPolicy()
	var tried [4]string
	for {
		ep, err := nextTarget(rs.up, rs.gen, &rs.br, rs.ep, &tried)
		if err != nil {
			return nil, err
		}
		rs.beginAttempt(ep, &tried, req)

		// The attempt's context: the call's deadline, and the stream
		// timer of an HTTP/2 upstream.
		if !rs.grpc.deadline.IsZero() {
			req.Header.Set("Grpc-Timeout", encodeGRPCTimeout(time.Until(rs.grpc.deadline)))
		}
		areq, st := attemptRequest(req, tr, rs.grpc.deadline, hasBody, rs.grpc.body)
		rs.resp.st = st
		t0 := time.Now()
		areq, tc := capRequest(areq, attemptCap(pol, t0, rs.overall))
		resp, err := svc.Transport.RoundTrip(areq)
		if err != nil && st.fired.Load() {
			err = errStreamIdle
		}
		if err == nil {
			tc.headed()
			rs.resp.cap = tc
			code := grpcStatusOf(resp.Header)
			now := time.Now()
			if code < 0 && resp.StatusCode == http.StatusOK && IsGRPC(resp.Header.Get("Content-Type")) {
				// A streamed response: its status comes with the trailers.
				body := st.wrap(resp.Body)
				if idem && rs.attempts <= svc.Retries && inCtx.Err() == nil {
					// An idempotent call is committed only once its first
					// message (or its end) arrived: a target that dies
					// between its headers and its first message is retried
					// on another, not relayed as a reset stream.
					held, rerr := holdFirstRead(body)
					if rerr != nil && rerr != io.EOF && inCtx.Err() == nil && !isTimeout(rerr) && !st.fired.Load() && t.replayable(req, rs, hasBody) {
						_ = body.Close()
						_ = rs.resp.Close() // stops st
						now := time.Now()
						rs.up.Report(ep, upstream.Outcome{Status: resp.StatusCode, GRPC: true, GRPCStatus: grpcUnavailable, Duration: now.Sub(t0), At: now})
						rs.attemptEnded(resp.StatusCode, rerr)
						if err := t.retryGate(inCtx, rs, now, rerr, false); err != nil {
							return nil, err
						}
						continue
					}
					body = held
				}
				rs.attemptAnswered(resp.StatusCode)
				rs.grpc.pending.ep, rs.grpc.pending.t0, rs.grpc.pending.resp, rs.grpc.pending.done = ep, t0, resp, false
				rs.resp.rc = body
				rs.resp.grpc, rs.resp.in = rs, inCtx
				resp.Body = &rs.resp
				return resp, nil
			}
			if code < 0 {
				// Not gRPC's answer (an HTTP error of the target or of
				// something in between): judged by its status.
				rs.up.Report(ep, upstream.Outcome{Status: resp.StatusCode, Duration: now.Sub(t0), At: now})
			} else {
				rs.grpc.status = code
				rs.up.Report(ep, upstream.Outcome{Status: resp.StatusCode, GRPC: true, GRPCStatus: code, Duration: now.Sub(t0), At: now})
			}
			if code >= 0 && resp.ContentLength < 0 {
				// Trailers-only: no flush may split it into headers and
				// an empty end of stream (the client would miss the
				// status), so it is relayed as a response without body.
				resp.ContentLength = 0
			}
			if pol.On.GRPC(code) && idem && rs.attempts <= svc.Retries && inCtx.Err() == nil && t.replayable(req, rs, hasBody) {
				_ = resp.Body.Close()
				_ = rs.resp.Close() // stops st
				rs.attemptEnded(resp.StatusCode, errGRPCUnavailable)
				if err := t.retryGate(inCtx, rs, now, errGRPCUnavailable, false); err != nil {
					// Over the budget: the target's own answer is relayed.
					rs.resp.rc = http.NoBody
					rs.grpc.pending.resp, rs.grpc.pending.done = resp, true
					rs.attemptAnswered(resp.StatusCode)
					resp.Body = &rs.resp
					return resp, nil
				}
				continue
			}
			rs.attemptAnswered(resp.StatusCode)
			rs.resp.rc = resp.Body
			rs.resp.grpc, rs.resp.in = rs, inCtx
			rs.grpc.pending.resp, rs.grpc.pending.done = resp, true
			resp.Body = &rs.resp
			return resp, nil
		}
		err = tc.failed(err)
		_ = rs.resp.Close() // stops st
		rs.attemptEnded(0, err)
		var ce *ConnectError
		connectFailed := errors.As(err, &ce)
		now := time.Now()
		timeout := isTimeout(err)
		rs.up.Report(ep, upstream.Outcome{ConnectFailed: connectFailed, Timeout: timeout, Duration: now.Sub(t0), At: now})
		if inCtx.Err() != nil || rs.attempts > svc.Retries {
			return nil, err
		}
		refused := refusedStream(err)
		switch {
		case !retryOnFailure(&pol.On, connectFailed, refused, timeout):
			return nil, err
		case rs.grpc.body.n.Load() == 0 && (connectFailed || refused):
		case idem && t.replayable(req, rs, hasBody) && (!timeout || err == errTryTimeout):
		default:
			return nil, err
		}
		if err := t.retryGate(inCtx, rs, now, err, connectFailed); err != nil {
			return nil, err
		}
	}
}

// replayable reports whether the request body can go to another target,
// and sets it up for the next attempt (req's body is then a new one: the
// earlier attempt's may still be read by its transport, and must then
// fail rather than take the new attempt's bytes).
func (t roundTripper) replayable(req *http.Request, rs *reqState, hasBody bool) bool {
	if !hasBody {
		return true
	}
	if rs.grpc.replay == nil {
		return rs.grpc.body.n.Load() == 0
	}
	rc, ok := rs.grpc.replay.again()
	if !ok {
		return false
	}
	rs.grpc.body = &countingBody{rc: rc}
	req.Body = rs.grpc.body
	return true
}

// errGRPCUnavailable stands for a target's UNAVAILABLE answer where a
// retry gate wants the failure it would return.
var errGRPCUnavailable = errors.New("target answered UNAVAILABLE")

// heldBody is a response body whose first read was done before the
// response was committed; that read's bytes and end come out first.
type heldBody struct {
	io.ReadCloser
	head []byte
	err  error // the first read's error (io.EOF when it held the end)
}

// holdFirstRead does the first read of rc and returns a body that gives
// it out again, with the read's error.
func holdFirstRead(rc io.ReadCloser) (io.ReadCloser, error) {
	buf := make([]byte, 16<<10)
	n, err := rc.Read(buf)
	for n == 0 && err == nil {
		n, err = rc.Read(buf)
	}
	return &heldBody{ReadCloser: rc, head: buf[:n], err: err}, err
}

func (h *heldBody) Read(p []byte) (int, error) {
	if len(h.head) > 0 {
		n := copy(p, h.head)
		h.head = h.head[n:]
		if len(h.head) == 0 && h.err != nil {
			return n, h.err
		}
		return n, nil
	}
	if h.err != nil {
		return 0, h.err
	}
	return h.ReadCloser.Read(p)
}
