package config

import (
	"fmt"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file's reading of a Schema (fields.go): each field's value decoded
// into the entity by its type, with the file's messages at the value's
// position.

// schemaFields returns the decoder fields of s for entity e, in the
// schema's order; a FieldCustom field is decoded by custom[name] (a
// custom field without one is left out).
func schemaFields[T any](d *decoder, s *Schema[T], e *T, custom map[string]func(*yaml.Node)) []field {
	out := make([]field, 0, len(s.Fields))
	for i := range s.Fields {
		f := &s.Fields[i]
		set := custom[f.Name]
		if set == nil && f.Type != FieldCustom {
			set = d.specField(&f.FieldSpec, f.At(e))
		}
		if set != nil {
			out = append(out, field{f.Name, set})
		}
	}
	return out
}

// specField decodes a value of field f into p (what the field's At
// returned).
func (d *decoder) specField(f *FieldSpec, p any) func(*yaml.Node) {
	switch f.Type {
	case FieldSeconds:
		return d.secondsField(DurationAt(p), f.Name, f.FilePositive, f.Min, f.Max)
	case FieldDuration:
		return d.durationSpec(f, DurationAt(p))
	case FieldInts:
		return d.intsField(p.(*[]int), f.Name, f.Min, f.Max)
	}
	switch p := p.(type) {
	case *string:
		if f.OneOf != nil {
			return d.enumField(p, f.Name, f.OneOf...)
		}
		return func(v *yaml.Node) {
			s, ok := d.str(v, f.Name)
			if !ok {
				return
			}
			if f.Check != nil {
				norm, err := f.Check(s)
				if err != nil {
					d.errorf(deref(v), "%s: %v", f.Name, err)
					return
				}
				s = norm
			}
			*p = s
		}
	case *int:
		if f.CheckInt == nil {
			return d.intField(p, f.Name, f.Min, f.Max)
		}
		return func(v *yaml.Node) {
			if i, ok := d.integer(v, f.Name, f.Min, f.Max); ok {
				if err := f.CheckInt(int(i)); err != nil {
					d.errorf(deref(v), "%s: %v", f.Name, err)
					return
				}
				*p = int(i)
			}
		}
	case **int:
		return func(v *yaml.Node) {
			if i, ok := d.integer(v, f.Name, f.Min, f.Max); ok {
				*p = ptrTo(int(i))
			}
		}
	case *Millis:
		return d.millisecondsField(p, f.Name, f.Min, f.Max)
	case *float64:
		return d.numberField(p, f.Name, float64(f.Min), float64(f.Max))
	case *bool:
		return d.boolField(p, f.Name)
	case **bool:
		return func(v *yaml.Node) {
			if b, ok := d.boolean(v, f.Name); ok {
				*p = &b
			}
		}
	case *[]string:
		switch f.Type {
		case FieldTags:
			return d.tags(p)
		case FieldTexts:
			return d.strings(f.Name, p)
		}
		check := f.Check
		if check == nil {
			check = func(s string) (string, error) { return s, nil }
		}
		return func(v *yaml.Node) {
			l := d.routeList(v, f.Name, check)
			if f.CheckList != nil {
				if err := f.CheckList(l); err != nil {
					d.errorf(deref(v), "%s: %v", f.Name, err)
					return
				}
			}
			*p = l
		}
	}
	panic(fmt.Sprintf("config: field %s: no decoder for %T", f.Name, p))
}

// durationSpec decodes a FieldDuration: positive with FilePositive or a
// lower bound, in Min..Max.
func (d *decoder) durationSpec(f *FieldSpec, p *time.Duration) func(*yaml.Node) {
	lo, hi := time.Duration(f.Min), time.Duration(f.Max)
	if lo > 0 {
		return d.durationBetween(p, f.Name, lo, hi)
	}
	return func(v *yaml.Node) {
		dur, ok := d.duration(v, f.Name, f.FilePositive)
		if !ok {
			return
		}
		if hi > 0 && dur > hi {
			d.errorf(deref(v), "%s: must be at most %v", f.Name, hi)
			return
		}
		*p = dur
	}
}

// DurationAt is the time.Duration a FieldSeconds' or FieldDuration's At
// points to.
func DurationAt(p any) *time.Duration {
	switch p := p.(type) {
	case *time.Duration:
		return p
	case *Duration:
		return (*time.Duration)(p)
	case *Seconds:
		return (*time.Duration)(p)
	}
	panic(fmt.Sprintf("config: %T is not a duration", p))
}

// block decodes a mapping of s's fields into e (custom as schemaFields)
// and fills s.FileBare's defaults into a block that gives none of its
// fields but lists.
func block[T any](d *decoder, n *yaml.Node, s *Schema[T], e *T, ctx string, custom map[string]func(*yaml.Node)) map[string]entry {
	seen := d.mapping(n, s.Kind, ctx, schemaFields(d, s, e, custom))
	if s.FileBare == nil || seen == nil {
		return seen
	}
	for _, f := range s.Fields {
		if _, given := seen[f.Name]; given && f.Type != FieldInts {
			return seen
		}
	}
	s.FileBare(e)
	return seen
}

// problems reports what an entity's Validate found, each at its field's
// key (at, the entity's position, for a field not in seen or the entity
// as a whole, named label) and once per field. A problem of a field's own
// value that did not decode, or one caused by another field (Because)
// that did not, is left out: that value's own error says what is wrong.
func (d *decoder) problems(label string, ps []Problem, seen map[string]entry, at Pos) {
	done := map[string]bool{}
	for _, p := range ps {
		e, present := seen[p.Field]
		if done[p.Field] || (present && !e.ok && len(p.Because) == 0) || !allOK(seen, p.Because...) {
			continue
		}
		done[p.Field] = true
		msg := p.Field + ": " + p.Msg
		if p.Field == "" {
			msg = label + ": " + p.Msg
		}
		if p.Detail != "" {
			msg += " (" + p.Detail + ")"
		}
		if present {
			d.errorf(e.key, "%s", msg)
		} else {
			d.errorAt(at, "%s", msg)
		}
	}
}

// asWritten is a copy of e in which each field the file gives but that did
// not decode holds a non-nil zero value (a pointer or list field), so
// that its Validate sees the field set, as the file has it.
func asWritten[T any](s *Schema[T], e T, seen map[string]entry) *T {
	for name, en := range seen {
		f, ok := s.Field(name)
		if en.ok || !ok {
			continue
		}
		v := reflect.ValueOf(f.At(&e))
		if v.Kind() != reflect.Pointer {
			continue
		}
		switch v = v.Elem(); {
		case v.Kind() == reflect.Pointer && v.IsNil():
			v.Set(reflect.New(v.Type().Elem()))
		case v.Kind() == reflect.Slice && v.IsNil():
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
	}
	return &e
}
