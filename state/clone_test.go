package state

import (
	"fmt"
	"reflect"
	"testing"
)

// TestDocCloneIsDeep fills every field reachable from a Doc (of every
// entity type, by reflection: a field added later is filled too), clones
// it, and checks that the copy equals the original and that changing
// everything reachable from the copy leaves the original as it was. A
// field with a pointer, slice or map that Clone does not copy fails it.
func TestDocCloneIsDeep(t *testing.T) {
	orig, want := filledDoc(), filledDoc()
	if !reflect.DeepEqual(orig, want) {
		t.Fatal("filling is not deterministic")
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("the copy differs:\n%+v\n%+v", c, orig)
	}
	mutate(reflect.ValueOf(c).Elem(), "Doc", t)
	if !reflect.DeepEqual(orig, want) {
		t.Fatal("changing the copy changed the original")
	}
	if reflect.DeepEqual(c, orig) {
		t.Fatal("the copy was not changed")
	}
}

// filledDoc is a Doc with every field set, but an upstream's Discovery
// (not stored, not copied).
func filledDoc() *Doc {
	d := &Doc{}
	fill(reflect.ValueOf(d).Elem(), 0)
	for _, u := range d.Upstreams {
		u.Discovery = nil
	}
	return d
}

// fill sets v and everything under it to non-zero values; a plugin
// config's any holds a nested JSON value.
func fill(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(depth + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(depth + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(depth) + 0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, depth+1+i)
			fill(e, depth+1)
			v.SetMapIndex(k, e)
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(map[string]any{"list": []any{"a", 1.5, map[string]any{"b": true}}}))
	}
}

// mutate changes every value reachable from v (which must be settable,
// or a map's element copy whose changes are stored back).
func mutate(v reflect.Value, path string, t *testing.T) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 100)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 100)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 100)
	case reflect.Pointer:
		if !v.IsNil() {
			mutate(v.Elem(), path, t)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				mutate(v.Field(i), path+"."+v.Type().Field(i).Name, t)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			mutate(v.Index(i), path+"[]", t)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			mutate(e, path+"[k]", t)
			v.SetMapIndex(k, e)
		}
	case reflect.Interface:
		if !v.IsNil() {
			e := reflect.New(v.Elem().Type()).Elem()
			e.Set(v.Elem())
			mutate(e, path+"(any)", t)
			v.Set(e)
		}
	}
}
