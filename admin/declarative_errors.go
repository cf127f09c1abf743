package admin

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kong 3's DB-less POST /config places each error at its entity: fields
// nest by kind and index ({"services": [{"routes": [null, {"paths":
// reason}]}]}) and each flattened error names its entity_type,
// entity_name and entity_id. declarativeEntities finds, for an error's
// position in the posted text, the innermost entity item holding it.

// entityType is Kong's entity type of the items of a declarative
// document's entity list key (top level or nested); ok false for a key
// that is no entity list.
func entityType(key string) (string, bool) {
	switch key {
	case "upstreams", "targets", "services", "routes", "certificates", "snis", "plugins", "consumers":
		return strings.TrimSuffix(key, "s"), true
	case "keyauth_credentials":
		return "keyauth_credential", true
	}
	return "", false
}

// entitySpan is one entity item of a posted document.
type entitySpan struct {
	path       []any // list key, index, list key, index...
	typ        string
	name, id   string
	start, end [2]int // line, column of the item and of its last node
}

// declarativeEntities are the entity items of a posted document, parents
// before their children (nil when the text does not parse).
func declarativeEntities(text []byte) []entitySpan {
	var doc yaml.Node
	if yaml.Unmarshal(text, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []entitySpan
	var walk func(m *yaml.Node, path []any)
	walk = func(m *yaml.Node, path []any) {
		if m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, list := m.Content[i].Value, m.Content[i+1]
			typ, ok := entityType(key)
			if !ok || list.Kind != yaml.SequenceNode {
				continue
			}
			for j, item := range list.Content {
				p := append(append([]any{}, path...), key, j)
				s := entitySpan{path: p, typ: typ, start: [2]int{item.Line, item.Column}, end: lastPos(item)}
				if item.Kind == yaml.MappingNode {
					for k := 0; k+1 < len(item.Content); k += 2 {
						switch v := item.Content[k+1].Value; item.Content[k].Value {
						case "name", "username", "target":
							if s.name == "" {
								s.name = v
							}
						case "id":
							s.id = v
						}
					}
				} else if item.Kind == yaml.ScalarNode {
					s.name = item.Value // a certificate's SNI given by name
				}
				out = append(out, s)
				walk(item, p)
			}
		}
	}
	walk(doc.Content[0], nil)
	return out
}

// lastPos is the position of the last node under n.
func lastPos(n *yaml.Node) [2]int {
	at := [2]int{n.Line, n.Column}
	for _, c := range n.Content {
		if p := lastPos(c); before(at, p) {
			at = p
		}
	}
	return at
}

func before(a, b [2]int) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// entityOf is the innermost entity holding the position (nil when none).
func entityOf(spans []entitySpan, line, col int) *entitySpan {
	var found *entitySpan
	p := [2]int{line, col}
	for i := range spans {
		if s := &spans[i]; !before(p, s.start) && !before(s.end, p) {
			found = s // later spans are nested deeper
		}
	}
	return found
}

// fieldOf splits an error message into its field and reason ("" when
// the message names no field).
func fieldOf(msg string) (string, string) {
	f, reason, ok := strings.Cut(msg, ": ")
	if !ok || f == "" || strings.ContainsAny(f, " \"'") {
		return "", msg
	}
	return f, reason
}

// placeError sets fields[path...][field] = reason, lists padded with
// nulls to the index; an error of no field goes under "@entity", as in
// Kong.
func placeError(fields map[string]any, path []any, field, reason string) {
	var m = fields
	for i := 0; i+1 < len(path); i += 2 {
		key, idx := path[i].(string), path[i+1].(int)
		list, _ := m[key].([]any)
		for len(list) <= idx {
			list = append(list, nil)
		}
		child, _ := list[idx].(map[string]any)
		if child == nil {
			child = map[string]any{}
			list[idx] = child
		}
		m[key] = list
		m = child
	}
	if field == "" {
		l, _ := m["@entity"].([]any)
		m["@entity"] = append(l, reason)
		return
	}
	if _, taken := m[field]; !taken {
		m[field] = reason
	}
}
