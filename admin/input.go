package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// formValue is a value read from a form: a string that may stand for a
// number, a boolean or a one-element list. The empty string is null.
type formValue string

// readBody decodes r's body into an object: JSON as is (numbers kept as
// json.Number), forms into the same tree with formValue leaves. An empty
// body is an empty object.
func readBody(r *http.Request) (*obj, error) {
	var data []byte
	if r.Body != nil {
		var err error
		data, err = io.ReadAll(r.Body)
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return nil, &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body too large (limit %d bytes)", mb.Limit)}
			}
			return nil, badRequest("cannot read the request body: %v", err)
		}
	}
	ct := r.Header.Get("Content-Type")
	mt, params := "", map[string]string{}
	if ct != "" {
		var err error
		mt, params, err = mime.ParseMediaType(ct)
		if err != nil {
			return nil, &Error{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("invalid Content-Type %q", ct)}
		}
	}
	trimmed := bytes.TrimSpace(data)
	if mt == "" {
		switch {
		case len(trimmed) == 0:
			return newObj(map[string]any{}, false), nil
		case trimmed[0] == '{' || trimmed[0] == '[':
			mt = "application/json"
		default:
			mt = "application/x-www-form-urlencoded"
		}
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if len(trimmed) == 0 {
			return newObj(map[string]any{}, false), nil
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		v, err := decodeJSONValue(dec, "", 0)
		var dup duplicateKey
		switch {
		case errors.As(err, &dup):
			return nil, &Error{Status: http.StatusBadRequest, Code: codeSchemaViolation, Name: "schema violation",
				Message: fmt.Sprintf("Cannot parse JSON body: duplicate key %q", string(dup)),
				Fields:  map[string]string{string(dup): "duplicate key"}}
		case err != nil:
			return nil, badRequest("Cannot parse JSON body")
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, badRequest("Cannot parse JSON body")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, badRequest("Cannot parse JSON body: expected an object")
		}
		return newObj(m, false), nil
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, badRequest("Cannot parse form body: %v", err)
		}
		return formObj(vals)
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(data), params["boundary"])
		form, err := mr.ReadForm(int64(len(data)) + 1)
		if err != nil {
			return nil, badRequest("Cannot parse multipart body: %v", err)
		}
		defer func() { _ = form.RemoveAll() }()
		if len(form.File) > 0 {
			return nil, badRequest("Cannot parse multipart body: file uploads are not supported")
		}
		return formObj(form.Value)
	}
	return nil, &Error{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("Unsupported Content-Type %q (use application/json, application/x-www-form-urlencoded or multipart/form-data)", mt)}
}

// duplicateKey is a key given twice in one JSON object, dotted from the
// body's top (as field errors name nested fields).
type duplicateKey string

func (k duplicateKey) Error() string { return "duplicate key " + string(k) }

// maxJSONDepth bounds the nesting of a JSON body.
const maxJSONDepth = 100

// decodeJSONValue reads one JSON value from dec as encoding/json would
// into an any (numbers as json.Number), but refuses an object that gives
// a key twice: last-wins would silently drop what the client sent. path
// is the dotted key of the value.
func decodeJSONValue(dec *json.Decoder, path string, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		m := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if _, dup := m[k]; dup {
				return nil, duplicateKey(sub)
			}
			if m[k], err = decodeJSONValue(dec, sub, depth+1); err != nil {
				return nil, err
			}
		}
		_, err := dec.Token() // '}'
		return m, err
	case json.Delim('['):
		l := []any{}
		for i := 0; dec.More(); i++ {
			v, err := decodeJSONValue(dec, path, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token() // ']'
		return l, err
	}
	return tok, nil
}

// formLeaf gathers the values of one dotted path of a form.
type formLeaf struct {
	plain    []string       // key=v (repeatable)
	appended []string       // key[]=v
	indexed  map[int]string // key[n]=v
}

// formObj turns form values into a tree: dotted keys nest objects, a
// final [] or [n] (or a repeated key) makes a list.
func formObj(vals map[string][]string) (*obj, error) {
	leaves := map[string]*formLeaf{}
	bad := fields{}
	for key, vs := range vals {
		path, suffix := key, ""
		if i := strings.IndexByte(key, '['); i >= 0 {
			path, suffix = key[:i], key[i:]
		}
		idx, kind := 0, 0 // 0 plain, 1 appended, 2 indexed
		switch {
		case suffix == "":
		case suffix == "[]":
			kind = 1
		case strings.HasPrefix(suffix, "[") && strings.HasSuffix(suffix, "]"):
			n, err := strconv.Atoi(suffix[1 : len(suffix)-1])
			if err != nil || n < 0 || n > 1000 {
				bad.add(key, "invalid form key")
				continue
			}
			idx, kind = n, 2
		default:
			bad.add(key, "invalid form key")
			continue
		}
		if path == "" || slices.Contains(strings.Split(path, "."), "") {
			bad.add(key, "invalid form key")
			continue
		}
		l := leaves[path]
		if l == nil {
			l = &formLeaf{indexed: map[int]string{}}
			leaves[path] = l
		}
		switch kind {
		case 0:
			l.plain = append(l.plain, vs...)
		case 1:
			l.appended = append(l.appended, vs...)
		case 2:
			if len(vs) != 1 {
				bad.add(key, "repeated indexed form key")
				continue
			}
			l.indexed[idx] = vs[0]
		}
	}
	paths := sortedKeys(leaves)
	root := map[string]any{}
	for _, p := range paths {
		l := leaves[p]
		var v any
		if len(l.appended) == 0 && len(l.indexed) == 0 && len(l.plain) == 1 {
			v = formValue(l.plain[0])
		} else {
			list := []any{}
			idx := make([]int, 0, len(l.indexed))
			for i := range l.indexed {
				idx = append(idx, i)
			}
			slices.Sort(idx)
			for _, i := range idx {
				list = append(list, formValue(l.indexed[i]))
			}
			for _, s := range l.plain {
				list = append(list, formValue(s))
			}
			for _, s := range l.appended {
				list = append(list, formValue(s))
			}
			v = list
		}
		parts := strings.Split(p, ".")
		m, ok := parentOf(root, parts)
		last := parts[len(parts)-1]
		if _, taken := m[last]; !ok || taken {
			bad.add(p, "conflicting form keys (a value and nested keys)")
			continue
		}
		m[last] = v
	}
	if len(bad) > 0 {
		e := schemaViolation(bad)
		e.Message = "Cannot parse form body: " + e.Message
		return nil, e
	}
	return newObj(root, true), nil
}

// obj is one object of a request body being decoded. Each accessor marks
// its key used; unknown() reports the others.
type obj struct {
	m      map[string]any
	form   bool
	prefix string // "healthchecks.active." for nested objects
	errs   fields // shared by the whole body
	used   map[string]bool
}

func newObj(m map[string]any, form bool) *obj {
	return &obj{m: m, form: form, errs: fields{}, used: map[string]bool{}}
}

// key is k's full (dotted) name for errors.
func (o *obj) key(k string) string { return o.prefix + k }

func (o *obj) fail(k, format string, args ...any) { o.errs.add(o.key(k), format, args...) }

// get returns k's value; present is false when k is absent. A JSON null
// or an empty form value is present with v == nil.
func (o *obj) get(k string) (v any, present bool) {
	v, present = o.m[k]
	if !present {
		return nil, false
	}
	o.used[k] = true
	if fv, ok := v.(formValue); ok && fv == "" {
		return nil, true
	}
	return v, true
}

// has reports whether k is present (null included) without using it.
func (o *obj) has(k string) bool {
	_, ok := o.m[k]
	return ok
}

// ignore marks keys as accepted and discarded.
func (o *obj) ignore(keys ...string) {
	for _, k := range keys {
		if o.has(k) {
			o.used[k] = true
		}
	}
}

// kongFields accepts the bookkeeping and Kong-only fields of kind, by
// the rules the configuration file applies to them (config.MetaFields,
// config.KongFields): the id is left to the caller, created_at and
// updated_at must be integers and ws_id a UUID (all three dropped), and a
// Kong-only field must hold null, an empty list or Kong's default, so
// clients that send whole Kong entities (Kong Manager, decK) work while a
// value that would change behaviour is refused.
func (o *obj) kongFields(kind string) {
	for _, k := range config.MetaFields(kind) {
		v, present := o.get(k)
		if !present || v == nil {
			continue
		}
		switch k {
		case "created_at", "updated_at":
			if i, why := asInt(v); why != "" || i < 0 {
				o.fail(k, "expected an integer")
			}
		case "ws_id":
			if s, why := asString(v); why != "" || !config.IsUUID(s) {
				o.fail(k, "expected a UUID")
			}
		}
	}
	for _, kf := range config.KongFields(kind) {
		v, present := o.get(kf.Name)
		if !present || v == nil {
			continue
		}
		if l, ok := v.([]any); ok && len(l) == 0 {
			continue
		}
		if _, isList := v.([]any); !isList && kf.Accepts(fmt.Sprint(v)) {
			continue
		}
		o.fail(kf.Name, "%s", kf.Refusal())
	}
}

// unknown reports every key no accessor used.
func (o *obj) unknown() {
	for k := range o.m {
		if !o.used[k] {
			o.fail(k, "unknown field")
		}
	}
}

// child returns k's nested object; ok is false when k is absent or null
// (null is reported by isNull) or not an object (reported).
func (o *obj) child(k string) (c *obj, present, null bool) {
	v, present := o.get(k)
	if !present {
		return nil, false, false
	}
	if v == nil {
		return nil, true, true
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.fail(k, "expected a record")
		return nil, true, false
	}
	return &obj{m: m, form: o.form, prefix: o.key(k) + ".", errs: o.errs, used: map[string]bool{}}, true, false
}

// err returns the body's schema violations, or nil.
func (o *obj) err() error { return o.errs.err() }

// decode runs fn over a fresh reading of body b and returns its schema
// violations, or nil.
func (b *obj) decode(fn func(o *obj)) error {
	o := newObj(b.m, b.form)
	fn(o)
	return o.err()
}

// readApplier reads r's body and checks it with decoder, which returns
// what applies the body inside Mutate.
func readApplier[F any](r *http.Request, decoder func(*obj) (F, error)) (F, *obj, error) {
	var none F
	b, err := readBody(r)
	if err != nil {
		return none, nil, err
	}
	apply, err := decoder(b)
	if err != nil {
		return none, nil, err
	}
	return apply, b, nil
}

// Value conversions. Each returns a reason on failure.

func asString(v any) (string, string) {
	switch s := v.(type) {
	case string:
		return s, ""
	case formValue:
		return string(s), ""
	}
	return "", "expected a string"
}

// numberText is the text of a JSON number or of a form value.
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return n.String(), true
	case formValue:
		return strings.TrimSpace(string(n)), true
	}
	return "", false
}

func asInt(v any) (int64, string) {
	s, ok := numberText(v)
	if !ok {
		return 0, "expected an integer"
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 5.0 is an integer in JSON's eyes; 5.5 and 1e300 are not.
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) < config.MaxExactInteger {
			return int64(f), ""
		}
		return 0, "expected an integer"
	}
	return i, ""
}

func asFloat(v any) (float64, string) {
	s, ok := numberText(v)
	if !ok {
		return 0, "expected a number"
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "expected a number"
	}
	return f, ""
}

func asBool(v any) (bool, string) {
	switch b := v.(type) {
	case bool:
		return b, ""
	case formValue:
		switch strings.ToLower(strings.TrimSpace(string(b))) {
		case "true", "1", "on", "yes":
			return true, ""
		case "false", "0", "off", "no":
			return false, ""
		}
	}
	return false, "expected a boolean"
}

// asList returns a list; in a form a single value is a one-element list.
func asList(v any) ([]any, string) {
	switch l := v.(type) {
	case []any:
		return l, ""
	case formValue:
		return []any{l}, ""
	}
	return nil, "expected an array"
}

// Setters: absent leaves *dst alone, null sets def, a value is converted,
// checked and set; failures are recorded.

// scalar reads k through conv into *dst (def when null, unchanged when
// absent or not convertible, which is reported); ok reports that a value
// was converted, for the setter to check it further.
func scalar[T any](o *obj, k string, dst *T, def T, conv func(any) (T, string)) (ok bool) {
	v, present := o.get(k)
	if !present {
		return false
	}
	if v == nil {
		*dst = def
		return false
	}
	x, why := conv(v)
	if why != "" {
		o.fail(k, "%s", why)
		return false
	}
	*dst = x
	return true
}

// setNullable sets an optional field from k when k is present: nil for a
// null (or an empty form value), else a new zero value that set reads k
// into (set reports k's errors).
func setNullable[T any](o *obj, k string, dst **T, set func(*T)) {
	v, present := o.get(k)
	if !present {
		return
	}
	if v == nil {
		*dst = nil
		return
	}
	var x T
	set(&x)
	*dst = &x
}

func (o *obj) setString(k string, dst *string, def string, check func(string) (string, error)) {
	s := *dst
	if !scalar(o, k, &s, def, asString) {
		*dst = s
		return
	}
	if check != nil {
		norm, err := check(s)
		if err != nil {
			o.fail(k, "%v", err)
			return
		}
		s = norm
	}
	*dst = s
}

func (o *obj) setInt(k string, dst *int, def int, lo, hi int64) {
	i := int64(*dst)
	if !scalar(o, k, &i, int64(def), asInt) {
		*dst = int(i)
		return
	}
	if i < lo || i > hi {
		o.fail(k, "value should be between %d and %d", lo, hi)
		return
	}
	*dst = int(i)
}

func (o *obj) setFloat(k string, dst *float64, def, lo, hi float64) {
	f := *dst
	if !scalar(o, k, &f, def, asFloat) {
		*dst = f
		return
	}
	if f < lo || f > hi {
		o.fail(k, "value should be between %s and %s", fmtNum(lo), fmtNum(hi))
		return
	}
	*dst = f
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// fmtDuration is d as time.Duration.String gives it, without its zero
// minutes and seconds: 24h, 10m, 1m30s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (o *obj) setBool(k string, dst *bool, def bool) { scalar(o, k, dst, def, asBool) }

// setList reads k as a list (through toList) whose items each converts,
// reporting its own failures; null sets nil.
func setList[T any](o *obj, k string, dst *[]T, toList func(any) ([]any, string), each func(i int, item any) (T, bool)) {
	v, present := o.get(k)
	switch {
	case !present:
		return
	case v == nil:
		*dst = nil
		return
	}
	list, why := toList(v)
	if why != "" {
		o.fail(k, "%s", why)
		return
	}
	out := make([]T, 0, len(list))
	for i, item := range list {
		x, ok := each(i, item)
		if !ok {
			return
		}
		out = append(out, x)
	}
	*dst = out
}

// setStrings reads a list of strings, normalising each with check and
// refusing duplicates (after normalisation). Null sets nil.
func (o *obj) setStrings(k string, dst *[]string, check func(string) (string, error)) {
	seen := map[string]bool{}
	setList(o, k, dst, asList, func(i int, item any) (string, bool) {
		s, why := asString(item)
		if why != "" {
			o.fail(k, "item %d: %s", i+1, why)
			return "", false
		}
		if check != nil {
			norm, err := check(s)
			if err != nil {
				o.fail(k, "item %d: %v", i+1, err)
				return "", false
			}
			s = norm
		}
		if seen[s] {
			o.fail(k, "duplicate value %q", s)
			return "", false
		}
		seen[s] = true
		return s, true
	})
}

// setInts reads a list of integers in lo..hi; a form value may also be
// comma-separated ("200,302").
func (o *obj) setInts(k string, dst *[]int, lo, hi int64) {
	setList(o, k, dst, listOfNumbers, func(i int, item any) (int, bool) {
		n, why := asInt(item)
		switch {
		case why != "":
			o.fail(k, "item %d: %s", i+1, why)
		case n < lo || n > hi:
			o.fail(k, "item %d: value should be between %d and %d", i+1, lo, hi)
		default:
			return int(n), true
		}
		return 0, false
	})
}

// listOfNumbers is asList where a form value may be comma-separated.
func listOfNumbers(v any) ([]any, string) {
	list, why := asList(v)
	if why != "" {
		return nil, why
	}
	var out []any
	for _, item := range list {
		if fv, ok := item.(formValue); ok && strings.Contains(string(fv), ",") {
			for _, part := range strings.Split(string(fv), ",") {
				out = append(out, formValue(part))
			}
			continue
		}
		out = append(out, item)
	}
	return out, ""
}

// setHeaders reads an object of header name → values (a list or one
// string). With route set names are lower-cased and Host is refused.
func (o *obj) setHeaders(k string, dst *map[string][]string, route bool) {
	v, present := o.get(k)
	if !present {
		return
	}
	if v == nil {
		*dst = nil
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.fail(k, "expected a record of header name to values")
		return
	}
	out := make(map[string][]string, len(m))
	folded := map[string]bool{}
	names := sortedKeys(m)
	for _, orig := range names {
		if err := config.CheckToken(orig); err != nil {
			o.fail(k, "invalid header name: %v", err)
			return
		}
		name, low := orig, strings.ToLower(orig)
		if folded[low] {
			o.fail(k, "duplicate header %q", orig)
			return
		}
		folded[low] = true
		if route {
			if low == "host" {
				o.fail(k, "use hosts to match the Host header")
				return
			}
			name = low
		}
		raw := m[orig]
		list, why := asList(raw)
		if s, isStr := raw.(string); isStr {
			list, why = []any{s}, ""
		}
		if why != "" {
			o.fail(k, "%s: %s", name, why)
			return
		}
		values := make([]string, 0, len(list))
		for _, item := range list {
			s, why := asString(item)
			if why != "" {
				o.fail(k, "%s: %s", name, why)
				return
			}
			values = append(values, s)
		}
		if len(values) == 0 {
			o.fail(k, "%s: at least one value is required", name)
			return
		}
		out[name] = values
	}
	*dst = out
}

// asDuration reads a Go duration ("1h30m") or 0, not negative, as the
// configuration file writes durations.
func asDuration(v any) (time.Duration, string) {
	const want = "expected a duration such as \"30s\" (or 0)"
	if n, ok := numberText(v); ok {
		if n == "0" {
			return 0, ""
		}
		if _, isForm := v.(formValue); !isForm {
			return 0, want
		}
		v = n
	}
	s, why := asString(v)
	if why != "" {
		return 0, want
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		return 0, want
	case d < 0:
		return 0, "must not be negative"
	}
	return d, ""
}
