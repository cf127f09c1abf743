package config

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The plugins' configuration schemas, stated once as data: the file's
// decoder and the admin API both check a plugin's config with
// CheckPluginConfig, which fills Kong's defaults in and reports each
// offending field by its dotted path under config ("minute",
// "add.headers"). A checked config is JSON-native data (string, bool,
// float64, []any, map[string]any, nil), the shape Kong shows it in.

// Loose is a scalar whose type is not known yet (a form field, or YAML
// text produced by ${VAR} expansion): the schema converts it to the
// field's type.
type Loose string

// FieldKind is the type of a plugin config field.
type FieldKind int

// The kinds of plugin config fields.
const (
	KindString FieldKind = iota
	KindBool
	KindNumber
	KindInteger
	KindStrings // an array of strings
	KindRecord
	// KindAnyJSON is any JSON value, kept as given (Kong fields of a
	// feature Outrigger refuses elsewhere, such as rate-limiting's redis).
	KindAnyJSON
)

// PluginField is one field of a plugin's config.
type PluginField struct {
	Name string
	Kind FieldKind
	// Default is the value of an absent or null field (nil: null).
	Default any
	// Required: the field cannot be null once its default is applied.
	Required bool
	// OneOf lists the values a string (or each element of strings) may
	// take.
	OneOf []string
	// Positive: a number must be greater than 0.
	Positive bool
	// Check checks a string (or each element of strings).
	Check func(string) error
	// Fields are a record's fields.
	Fields []PluginField
	// Unsupported, when set, is the reason a value Outrigger cannot
	// honour is refused ("" when it can).
	Unsupported func(v any) string
}

// PluginSchema is a plugin's name, where it may apply and its config.
type PluginSchema struct {
	Name string
	// NoConsumer: the plugin cannot be scoped to a consumer (Kong's
	// typedefs.no_consumer).
	NoConsumer bool
	Config     []PluginField
	// Check runs on a config whose fields all passed: it returns the
	// offending field ("" for the config as a whole) and why.
	Check func(cfg map[string]any) (field, msg string)
}

// PluginFieldError is one offending field of a plugin config, by its
// dotted path under config ("" is the config itself).
type PluginFieldError struct {
	Path string
	Msg  string
}

// CheckPluginConfig checks raw (nil, or a JSON-like object) against s and
// returns the config with every default filled in, or the offending
// fields sorted by path.
func CheckPluginConfig(s *PluginSchema, raw any) (map[string]any, []PluginFieldError) {
	var errs []PluginFieldError
	fail := func(path, format string, args ...any) {
		errs = append(errs, PluginFieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if raw == nil {
		raw = map[string]any{}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		fail("", "expected a record")
		return nil, errs
	}
	out := checkRecord(s.Config, m, "", fail)
	if len(errs) == 0 && s.Check != nil {
		if f, msg := s.Check(out); msg != "" {
			fail(f, "%s", msg)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
		return nil, errs
	}
	return out, nil
}

func checkRecord(fields []PluginField, m map[string]any, prefix string, fail func(path, format string, args ...any)) map[string]any {
	out := make(map[string]any, len(fields))
	for k := range m {
		if !slices.ContainsFunc(fields, func(f PluginField) bool { return f.Name == k }) {
			fail(prefix+k, "unknown field")
		}
	}
	for i := range fields {
		f := &fields[i]
		path := prefix + f.Name
		v, present := m[f.Name]
		if !present || v == nil {
			if f.Kind == KindRecord && f.Default == nil {
				out[f.Name] = checkRecord(f.Fields, map[string]any{}, path+".", fail)
				continue
			}
			out[f.Name] = cloneJSON(f.Default)
			if f.Required && f.Default == nil {
				fail(path, "required field missing")
			}
			continue
		}
		x, why := convertField(f, v, path, fail)
		if why != "" {
			fail(path, "%s", why)
			continue
		}
		if f.Unsupported != nil {
			if why := f.Unsupported(x); why != "" {
				fail(path, "%s", why)
				continue
			}
		}
		out[f.Name] = x
	}
	return out
}

// convertField converts v to f's kind and checks it; a non-empty reason
// reports it (a record's fields report their own).
func convertField(f *PluginField, v any, path string, fail func(path, format string, args ...any)) (any, string) {
	switch f.Kind {
	case KindString:
		s, ok := v.(string)
		if l, isLoose := v.(Loose); isLoose {
			s, ok = string(l), true
		}
		if !ok {
			return nil, "expected a string"
		}
		return s, checkString(f, s)
	case KindBool:
		switch b := v.(type) {
		case bool:
			return b, ""
		case Loose:
			switch strings.ToLower(strings.TrimSpace(string(b))) {
			case "true", "1", "on", "yes":
				return true, ""
			case "false", "0", "off", "no":
				return false, ""
			}
		}
		return nil, "expected a boolean"
	case KindNumber, KindInteger:
		n, ok := jsonNumber(v)
		want := "expected a number"
		if f.Kind == KindInteger {
			want = "expected an integer"
		}
		if !ok || (f.Kind == KindInteger && n != math.Trunc(n)) {
			return nil, want
		}
		if f.Positive && n <= 0 {
			return nil, "value must be greater than 0"
		}
		return n, ""
	case KindStrings:
		l, ok := v.([]any)
		if s, isStr := v.(Loose); isStr {
			l, ok = []any{s}, true
		}
		if !ok {
			return nil, "expected an array"
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if ls, isLoose := e.(Loose); isLoose {
				s, ok = string(ls), true
			}
			if !ok {
				fail(fmt.Sprintf("%s.%d", path, i+1), "expected a string")
				continue
			}
			if why := checkString(f, s); why != "" {
				fail(fmt.Sprintf("%s.%d", path, i+1), "%s", why)
				continue
			}
			out = append(out, s)
		}
		return out, ""
	case KindAnyJSON:
		return plainJSON(v), ""
	case KindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a record"
		}
		return checkRecord(f.Fields, m, path+".", fail), ""
	}
	return nil, "unknown field type"
}

func checkString(f *PluginField, s string) string {
	if len(f.OneOf) > 0 && !slices.Contains(f.OneOf, s) {
		return "expected one of: " + strings.Join(f.OneOf, ", ")
	}
	if f.Check != nil {
		if err := f.Check(s); err != nil {
			return err.Error()
		}
	}
	return ""
}

// jsonNumber is a finite number given as JSON, YAML or loose text.
func jsonNumber(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		x, err := strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return 0, false
		}
		f = x
	case Loose:
		x, err := strconv.ParseFloat(strings.TrimSpace(string(n)), 64)
		if err != nil {
			return 0, false
		}
		f = x
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// cloneJSON deep-copies JSON-native data.
func cloneJSON(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = cloneJSON(x[i])
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneJSON(e)
		}
		return out
	}
	return v
}

// plainJSON converts numbers and loose text inside v to float64 and
// string.
func plainJSON(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = plainJSON(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainJSON(e)
		}
		return out
	case json.Number, int, int64:
		f, _ := jsonNumber(x)
		return f
	case Loose:
		return string(x)
	}
	return v
}
