package plugins

import "strings"

// transformer is request-transformer (headers and query arguments) or
// response-transformer (headers): the edits are fixed at build time, in
// Kong's order: remove, rename, replace, add, append.
type transformer struct {
	up, query, down []Edit
}

func (t *transformer) access(x *Exchange, _ Request) bool {
	x.Up = append(x.Up, t.up...)
	x.Query = append(x.Query, t.query...)
	x.Down = append(x.Down, t.down...)
	return true
}

// respond is response-transformer's header_filter.
func (t *transformer) respond(x *Exchange, _ Request) { x.Down = append(x.Down, t.down...) }

// edits are a config's edits of one list (headers or querystring) in
// Kong's order.
func edits(c map[string]any, list string, headers bool) []Edit {
	name := func(s string) string {
		if headers {
			return s
		}
		return s
	}
	var out []Edit
	for _, s := range strs(record(c, "remove"), list) {
		out = append(out, Edit{Op: OpRemove, Name: name(s)})
	}
	for _, s := range strs(record(c, "rename"), list) {
		from, to, _ := strings.Cut(s, ":")
		out = append(out, Edit{OpRename, name(from), name(to)})
	}
	for _, op := range []struct {
		key string
		op  Op
	}{{"replace", OpReplace}, {"add", OpAdd}, {"append", OpAppend}} {
		for _, s := range strs(record(c, op.key), list) {
			k, v, _ := strings.Cut(s, ":")
			out = append(out, Edit{op.op, name(k), v})
		}
	}
	return out
}

func newRequestTransformer(c map[string]any) *transformer {
	return &transformer{up: edits(c, "headers", true), query: edits(c, "querystring", false)}
}

func newResponseTransformer(c map[string]any) *transformer {
	return &transformer{down: edits(c, "headers", true)}
}
