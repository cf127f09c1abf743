package admin

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// The admin API's reading of an entity's field table (config.Schema):
// each field's value in a JSON or form body decoded into the entity by
// its type, with Kong's messages; a null (or an empty form value) sets the
// field's default (the zero value with APIZeroNull). Durations are
// numbers of seconds. Custom fields are left to the kind's decoder, and
// the file's only (FileOnly) refused as unknown.

// decodeFields reads s's fields of body o into e. kong replaces the check
// of a field whose refusal Kong words differently from the file.
func decodeFields[T any](o *obj, s *config.Schema[T], e *T, kong map[string]func(string) (string, error)) {
	def := s.New()
	var zero T
	for i := range s.Fields {
		f := &s.Fields[i]
		d := &def
		if f.APIZeroNull {
			d = &zero
		}
		if f.Type != config.FieldCustom && !f.FileOnly {
			o.setField(&f.FieldSpec, f.At(e), f.At(d), kong[f.Name])
		}
	}
}

// setField reads field f into p, def holding its default (both what the
// field's At returned); check, when set, replaces f.Check.
func (o *obj) setField(f *config.FieldSpec, p, def any, check func(string) (string, error)) {
	if check == nil {
		check = f.Check
	}
	k := f.Name
	switch f.Type {
	case config.FieldSeconds, config.FieldDuration:
		dst := config.DurationAt(p)
		setSeconds(o, k, dst, config.DurationAt(def).Seconds(), time.Duration(f.Min).Seconds(), time.Duration(f.Max).Seconds())
		return
	case config.FieldInts:
		o.setInts(k, p.(*[]int), f.Min, f.Max)
		return
	}
	switch p := p.(type) {
	case *string:
		if f.OneOf != nil {
			check = oneOf(f.OneOf...)
		}
		o.setString(k, p, *def.(*string), check)
	case *int:
		if f.CheckInt == nil {
			o.setInt(k, p, *def.(*int), f.Min, f.Max)
			return
		}
		if o.has(k) {
			i := *p
			o.setInt(k, &i, *def.(*int), f.Min, f.Max)
			if err := f.CheckInt(i); err != nil {
				o.fail(k, "%v", err)
			} else {
				*p = i
			}
		}
	case **int:
		setNullable(o, k, p, func(d *int) { o.setInt(k, d, 0, f.Min, f.Max) })
	case *config.Millis:
		o.setMillis(k, p, *def.(*config.Millis), f.Min, f.Max)
	case *float64:
		o.setFloat(k, p, *def.(*float64), float64(f.Min), float64(f.Max))
	case *bool:
		o.setBool(k, p, *def.(*bool))
	case **bool:
		setNullable(o, k, p, func(b *bool) { o.setBool(k, b, false) })
	case *[]string:
		if f.Type == config.FieldTags {
			check = checkTag
		}
		o.setStrings(k, p, check)
		if f.CheckList != nil {
			if err := f.CheckList(*p); err != nil {
				o.fail(k, "%v", err)
			}
		}
	default:
		panic(fmt.Sprintf("admin: field %s: no decoder for %T", k, p))
	}
}

// setMillis reads a number of milliseconds in lo..hi.
func (o *obj) setMillis(k string, dst *config.Millis, def config.Millis, lo, hi int64) {
	i := ms(dst.D())
	o.setInt(k, &i, ms(def.D()), lo, hi)
	*dst = config.Millis(time.Duration(i) * time.Millisecond)
}

// problemsError is what an entity's Validate found as Kong's schema
// violation: one reason per field, the first, in Kong's words where
// kong has them (by the problem's message); a problem of the entity as a
// whole is Kong's "@entity".
func problemsError(ps []config.Problem, kong map[string]string) error {
	f := fields{}
	for _, p := range ps {
		field, msg := p.Field, p.Msg
		if field == "" {
			field = "@entity"
		}
		if w, ok := kong[msg]; ok {
			msg = w
		}
		f.add(field, "%s", msg)
	}
	return f.err()
}

// blockOut is a block as the API shows it: its table's fields in the
// table's order (fieldsOut).
type blockOut struct {
	keys []string
	vals []any
}

// fieldsOut shows e's fields of s in s's order: durations as seconds,
// the fields nulls names as null when empty (Kong's), a custom field as
// custom has it (left out when custom has none); the file's only fields
// are left out.
func fieldsOut[T any](s *config.Schema[T], e *T, custom map[string]any, nulls ...string) blockOut {
	var b blockOut
	for i := range s.Fields {
		f := &s.Fields[i]
		var v any
		switch {
		case f.FileOnly:
			continue
		case f.Type == config.FieldCustom:
			c, ok := custom[f.Name]
			if !ok {
				continue
			}
			v = c
		case f.Type == config.FieldSeconds || f.Type == config.FieldDuration:
			v = config.DurationAt(f.At(e)).Seconds()
		default:
			v = reflect.ValueOf(f.At(e)).Elem().Interface()
			if str, ok := v.(string); ok && str == "" && slices.Contains(nulls, f.Name) {
				v = nil
			}
		}
		b.keys, b.vals = append(b.keys, f.Name), append(b.vals, v)
	}
	return b
}

// MarshalJSON writes the block as an object in its fields' order.
func (b blockOut) MarshalJSON() ([]byte, error) {
	out := []byte{'{'}
	for i, k := range b.keys {
		v, err := json.Marshal(b.vals[i])
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(strconv.AppendQuote(out, k), ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}
