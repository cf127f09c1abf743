package h1

// The writer side: mechanism only. An engine writes an upstream request
// head into one pooled buffer with, for example:
//
//	skip := r.Hop.Minus(r.TransferEncoding).Union(r.Index("x-forwarded-for"))
//	b = r.AppendHead(b[:0], target, skip)
//	b = h1.AppendField(b, "X-Forwarded-For", xff)
//	b = h1.EndHead(b)
//
// Nothing here validates what it appends: names and values that do not come
// from a parse are checked once with ValidFieldName and ValidFieldValue.

// AppendRequestLine appends "method SP target SP HTTP/1.1 CRLF": a proxy
// sends its own version (RFC 9110 §6.2).
func AppendRequestLine(dst, method, target []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	return append(dst, " HTTP/1.1\r\n"...)
}

// AppendStatusLine appends "HTTP/1.1 SP code SP reason CRLF"; code must be
// in [100, 999].
func AppendStatusLine(dst []byte, code int, reason []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = append(dst, byte('0'+code/100%10), byte('0'+code/10%10), byte('0'+code%10), ' ')
	dst = append(dst, reason...)
	return append(dst, '\r', '\n')
}

// AppendField appends one field line "name: value CRLF".
func AppendField[N, V ~string | ~[]byte](dst []byte, name N, value V) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':', ' ')
	dst = append(dst, value...)
	return append(dst, '\r', '\n')
}

// EndHead appends the empty line that ends a head.
func EndHead(dst []byte) []byte { return append(dst, '\r', '\n') }

// AppendFields appends every field not in skip, in order, names as
// received and values without their surrounding OWS.
func (h *Header) AppendFields(dst []byte, skip FieldSet) []byte {
	for i := range h.Fields {
		if !skip.Has(i) {
			dst = AppendField(dst, h.Fields[i].Name, h.Fields[i].Value)
		}
	}
	return dst
}

// AppendHead appends the request line with target (r.Target, or a
// rewritten one) and the fields not in skip. The head is left open for
// more fields; EndHead closes it.
func (r *Request) AppendHead(dst, target []byte, skip FieldSet) []byte {
	dst = AppendRequestLine(dst, r.Method, target)
	return r.AppendFields(dst, skip)
}

// AppendHead appends the status line (code and reason as received) and the
// fields not in skip. The head is left open for more fields; EndHead
// closes it.
func (r *Response) AppendHead(dst []byte, skip FieldSet) []byte {
	dst = AppendStatusLine(dst, r.Status, r.Reason)
	return r.AppendFields(dst, skip)
}
