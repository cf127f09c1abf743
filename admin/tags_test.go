package admin

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTagFilter checks Kong's ?tags= semantics item by item: a,b needs
// every tag, a/b any of them; mixing both, an empty or invalid tag, a
// parameter given twice and any unknown parameter are refused, naming the
// parameter.
func TestTagFilter(t *testing.T) {
	items := map[string][]string{"none": nil, "a": {"a"}, "b": {"b"}, "ab": {"a", "b"}, "abc": {"c", "b", "a"}}
	for _, tc := range []struct {
		query string
		want  string // the items kept, sorted, space-separated
	}{
		{"", "a ab abc b none"},
		{"tags=a", "a ab abc"},
		{"tags=a,b", "ab abc"},
		{"tags=a/b", "a ab abc b"},
		{"tags=a,b,c", "abc"},
		{"tags=c/zz", "abc"},
		{"tags=zz", ""},
		{"size=2&offset=YQ&tags=a", "a ab abc"},
	} {
		p, err := parsePage(httptest.NewRequest("GET", "/services?"+tc.query, nil), tagged)
		if err != nil {
			t.Fatalf("?%s: %v", tc.query, err)
		}
		var kept []string
		for _, name := range []string{"a", "ab", "abc", "b", "none"} {
			if p.tags.keep(items[name]) {
				kept = append(kept, name)
			}
		}
		if got := strings.Join(kept, " "); got != tc.want {
			t.Errorf("?%s keeps %q, want %q", tc.query, got, tc.want)
		}
	}
	for _, tc := range []struct {
		query, param string
		withTags     bool
	}{
		{"tags=a,b/c", "tags", tagged},
		{"tags=", "tags", tagged},
		{"tags=a,,b", "tags", tagged},
		{"tags=a%20b", "tags", tagged},
		{"tags=" + strings.Repeat("x", 129), "tags", tagged},
		{"tags=a&tags=b", "tags", tagged},
		{"tag=a", "tag", tagged},
		{"foo=1&size=2", "foo", tagged},
		{"tags=a", "tags", untagged},
	} {
		_, err := parsePage(httptest.NewRequest("GET", "/x?"+tc.query, nil), tc.withTags)
		e, ok := err.(*Error)
		if !ok || e.Status != 400 || e.Code != codeInvalidOptions || e.Fields[tc.param] == "" || !strings.Contains(e.Message, tc.param) {
			t.Errorf("?%s: %#v, want a 400 invalid option naming %s", tc.query, err, tc.param)
		}
	}
}
