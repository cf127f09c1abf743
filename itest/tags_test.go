package itest

// Tags end to end through the real binary: tags on every entity (file and
// admin API), Kong's ?tags= filter (a,b: every tag; a/b: any of them),
// GET /tags and GET /tags/{tag}, and the list endpoints refusing a query
// parameter they do not know (a misspelt filter used to list everything,
// so a tag-scoped cleanup script deleted everything).

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// tgConfig has tagged entities in the file: an upstream with a tagged
// target, a service and a route.
func tgConfig(backend string) string {
	return fmt.Sprintf(`
upstreams:
  - name: file_up
    tags: [file, team-a]
    targets: [{target: %s, tags: [file, tgt]}]
services:
  - name: file_svc
    host: file_up
    tags: [file, keep]
    routes: [{name: file_route, paths: [/], tags: [file]}]
`, backend)
}

// tgPlainConfig is tgConfig without tags.
func tgPlainConfig(backend string) string {
	return fmt.Sprintf(`
upstreams:
  - name: file_up
    targets: [{target: %s}]
services:
  - name: file_svc
    host: file_up
    routes: [{name: file_route, paths: [/]}]
`, backend)
}

// tgNames returns the sorted names (or targets) of a list's items.
func tgNames(items []map[string]any) []string {
	out := []string{}
	for _, it := range items {
		n, _ := it["name"].(string)
		if n == "" {
			n, _ = it["target"].(string)
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func tgWant(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
}

// TestTagsCleanupScript is the script of the defect: list the services
// carrying a tag, then delete each. Only the tagged ones go; a tag nobody
// carries lists nothing.
func TestTagsCleanupScript(t *testing.T) {
	b := startBackend(t, "b", nil)
	n := adNewNode(t, "", tgPlainConfig(b.Addr))
	g := n.start()
	api := adAdmin(g)
	api.json(t, http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": "bare", "host": "example.com"})
	tgWant(t, "GET /services?tags=nonexistent", tgNames(api.all(t, "/services?tags=nonexistent")))
	for _, s := range []struct {
		name string
		tags []string
	}{{"tmp1", []string{"temp"}}, {"tmp2", []string{"temp", "x"}}, {"perm", []string{"prod"}}} {
		api.json(t, http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": s.name, "host": "example.com", "tags": s.tags})
	}
	tgWant(t, "GET /services?tags=nonexistent", tgNames(api.all(t, "/services?tags=nonexistent")))

	for _, s := range api.all(t, "/services?tags=temp") {
		api.do(t, http.StatusNoContent, http.MethodDelete, "/services/"+s["id"].(string), "", "")
	}
	tgWant(t, "services after the cleanup", tgNames(api.all(t, "/services")), "bare", "file_svc", "perm")

	// A misspelt filter is refused, never taken for "everything".
	r := api.get(t, http.StatusBadRequest, "/services?tag=perm")
	if f, _ := r.fields()["tag"].(string); !strings.Contains(f, "unknown query parameter") {
		t.Fatalf("GET /services?tag=perm: %s", r.raw)
	}
	tgWant(t, "services after the refused list", tgNames(api.all(t, "/services")), "bare", "file_svc", "perm")
}

// TestTagsFilter checks Kong's syntax on every tagged list: a,b keeps the
// items carrying every tag, a/b those carrying any; mixing is a 400. The
// next link keeps the filter.
func TestTagsFilter(t *testing.T) {
	b := startBackend(t, "b", nil)
	n := adNewNode(t, "", tgConfig(b.Addr))
	g := n.start()
	api := adAdmin(g)
	sets := map[string][]string{"ab": {"a", "b"}, "a": {"a"}, "b": {"b"}, "c": {"c"}}
	for name, tags := range sets {
		api.json(t, http.StatusCreated, http.MethodPost, "/upstreams", map[string]any{"name": "up_" + name, "tags": tags})
		api.json(t, http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": "svc_" + name, "host": "example.com", "tags": tags})
		api.json(t, http.StatusCreated, http.MethodPost, "/services/svc_"+name+"/routes", map[string]any{"name": "rt_" + name, "paths": []string{"/" + name}, "tags": tags})
	}
	for i, tags := range [][]string{{"a", "b"}, {"a"}, {"b"}, {"c"}} {
		api.json(t, http.StatusCreated, http.MethodPost, "/upstreams/file_up/targets", map[string]any{"target": fmt.Sprintf("127.0.0.1:%d", 9001+i), "tags": tags})
	}
	for _, l := range []struct {
		path, prefix string
		all, any     []string // a,b and a/b
		file         []string // ?tags=file
	}{
		{"/upstreams", "up_", []string{"up_ab"}, []string{"up_a", "up_ab", "up_b"}, []string{"file_up"}},
		{"/services", "svc_", []string{"svc_ab"}, []string{"svc_a", "svc_ab", "svc_b"}, []string{"file_svc"}},
		{"/routes", "rt_", []string{"rt_ab"}, []string{"rt_a", "rt_ab", "rt_b"}, []string{"file_route"}},
		{"/services/svc_ab/routes", "rt_", []string{"rt_ab"}, []string{"rt_ab"}, []string{}},
		{"/upstreams/file_up/targets", "", []string{"127.0.0.1:9001"}, []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}, []string{b.Addr}},
		{"/upstreams/file_up/health", "", []string{"127.0.0.1:9001"}, []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}, []string{b.Addr}},
	} {
		t.Run(l.path, func(t *testing.T) {
			tgWant(t, l.path+"?tags=a,b", tgNames(api.all(t, l.path+"?tags=a,b")), l.all...)
			tgWant(t, l.path+"?tags=a/b", tgNames(api.all(t, l.path+"?tags=a/b")), l.any...)
			tgWant(t, l.path+"?tags=file", tgNames(api.all(t, l.path+"?tags=file")), l.file...)
			tgWant(t, l.path+"?tags=nonexistent", tgNames(api.all(t, l.path+"?tags=nonexistent")))
			// Paged one by one: next carries the filter.
			tgWant(t, l.path+"?tags=a/b&size=1", tgNames(api.all(t, l.path+"?size=1&tags=a/b")), l.any...)
			for _, bad := range []string{"a,b/c", "a/b,c", "a,,b", "a/"} {
				r := api.get(t, http.StatusBadRequest, l.path+"?tags="+url.QueryEscape(bad))
				if _, ok := r.fields()["tags"]; !ok || r.str("message") == "" {
					t.Fatalf("?tags=%s: %s", bad, r.raw)
				}
			}
		})
	}
}

// TestTagsEndpoints checks GET /tags and GET /tags/{tag}: Kong's
// {entity_name, entity_id, tag} objects, paged with data, next and offset.
func TestTagsEndpoints(t *testing.T) {
	b := startBackend(t, "b", nil)
	n := adNewNode(t, "", tgConfig(b.Addr))
	g := n.start()
	api := adAdmin(g)
	svc := api.json(t, http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": "api_svc", "host": "example.com", "tags": []string{"api", "file"}})
	up := api.get(t, http.StatusOK, "/upstreams/file_up")
	fileSvc := api.get(t, http.StatusOK, "/services/file_svc")
	fileRoute := api.get(t, http.StatusOK, "/routes/file_route")
	target := api.get(t, http.StatusOK, "/upstreams/file_up/targets/"+b.Addr)

	pair := func(m map[string]any) string {
		return fmt.Sprintf("%v %v %v", m["tag"], m["entity_name"], m["entity_id"])
	}
	var got []string
	for _, m := range api.all(t, "/tags/file") {
		if len(m) != 3 {
			t.Fatalf("tag object %v: want exactly entity_name, entity_id and tag", m)
		}
		got = append(got, pair(m))
	}
	sort.Strings(got)
	want := []string{
		"file routes " + fileRoute.str("id"), "file services " + fileSvc.str("id"), "file services " + svc.str("id"),
		"file targets " + target.str("id"), "file upstreams " + up.str("id"),
	}
	sort.Strings(want)
	tgWant(t, "GET /tags/file", got, want...)

	// Every pair, one per page.
	var pages []string
	path := "/tags?size=1"
	for i := 0; path != ""; i++ {
		if i > 50 {
			t.Fatal("GET /tags: more than 50 pages")
		}
		r := api.get(t, http.StatusOK, path)
		if len(r.data()) != 1 {
			t.Fatalf("GET %s: %s", path, r.raw)
		}
		pages = append(pages, pair(r.data()[0]))
		next, _ := r.m["next"].(string)
		if next != "" && r.str("offset") == "" {
			t.Fatalf("GET %s: next without offset: %s", path, r.raw)
		}
		path = next
	}
	if !sort.StringsAreSorted(pages) {
		t.Fatalf("GET /tags pages out of order: %q", pages)
	}
	// file×5, team-a, tgt, keep, api.
	if len(pages) != 9 {
		t.Fatalf("GET /tags: %d pairs, want 9: %q", len(pages), pages)
	}
	tgWant(t, "GET /tags/nonexistent", tgNames(api.all(t, "/tags/nonexistent")))
	r := api.get(t, http.StatusBadRequest, "/tags/a,b")
	if _, ok := r.fields()["tag"]; !ok {
		t.Fatalf("GET /tags/a,b: %s", r.raw)
	}
	r = api.get(t, http.StatusBadRequest, "/tags?tags=file")
	if _, ok := r.fields()["tags"]; !ok {
		t.Fatalf("GET /tags?tags=file: %s", r.raw)
	}
}

// TestTagsUnknownQueryParameter: every list endpoint refuses a parameter it
// does not know with a JSON 400 naming it, and still takes size and offset
// (and tags where its items carry tags).
func TestTagsUnknownQueryParameter(t *testing.T) {
	b := startBackend(t, "b", nil)
	n := adNewNode(t, "", tgPlainConfig(b.Addr))
	g := n.start()
	api := adAdmin(g)
	leaf := certtest.NewCA(t, "itest CA").Server(t, "a.example.com")
	cert := api.json(t, http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(leaf.CertPEM), "key": string(leaf.KeyPEM), "snis": []string{"a.example.com"}, "tags": []string{"edge"}})
	tagged := []string{"/upstreams", "/upstreams/file_up/targets", "/upstreams/file_up/health", "/services", "/services/file_svc/routes", "/routes", "/certificates",
		"/certificates/" + cert.str("id") + "/snis", "/snis"}
	untaggedLists := []string{"/upstreams/file_up/overrides", "/tags", "/tags/edge"}
	for _, path := range append(slices.Clone(tagged), untaggedLists...) {
		t.Run(path, func(t *testing.T) {
			for _, q := range []struct{ query, param string }{{"tag=x", "tag"}, {"foo=1", "foo"}, {"size=1&filter=x", "filter"}, {"size=1&size=2", "size"}} {
				r := api.get(t, http.StatusBadRequest, path+"?"+q.query)
				if r.m == nil || r.str("message") == "" || !strings.Contains(r.str("message"), q.param) {
					t.Fatalf("?%s: the 400 does not name %s: %s", q.query, q.param, r.raw)
				}
				if _, ok := r.fields()[q.param]; !ok {
					t.Fatalf("?%s: fields do not name %s: %s", q.query, q.param, r.raw)
				}
			}
			api.get(t, http.StatusOK, path+"?size=1")
			if slices.Contains(tagged, path) {
				api.get(t, http.StatusOK, path+"?size=5&tags=edge")
			} else if r := api.get(t, http.StatusBadRequest, path+"?tags=edge"); r.fields()["tags"] == nil {
				t.Fatalf("?tags= on a list without tags: %s", r.raw)
			}
		})
	}
	tgWant(t, "certificates tagged edge", tgIDs(api.all(t, "/certificates?tags=edge")), cert.str("id"))
	tgWant(t, "certificates tagged file", tgIDs(api.all(t, "/certificates?tags=file")))
	tgWant(t, "services tagged edge", tgNames(api.all(t, "/services?tags=edge")))
}

func tgIDs(items []map[string]any) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it["id"].(string))
	}
	sort.Strings(out)
	return out
}

// TestTagsAPI: tags are checked by Kong's rules on every entity, shown on
// the effective entity (the file's too), replaced by a PATCH, cleared by
// null, and persisted in the admin layer across a restart.
func TestTagsAPI(t *testing.T) {
	b := startBackend(t, "b", nil)
	stateFile := filepath.Join(t.TempDir(), "admin-state.json")
	n := adNewNode(t, fmt.Sprintf("  state_file: %s\n", stateFile), tgConfig(b.Addr))
	g := n.start()
	api := adAdmin(g)

	for _, c := range []struct{ path, key string }{
		{"/upstreams/file_up", "tags"}, {"/services/file_svc", "tags"}, {"/routes/file_route", "tags"},
		{"/upstreams/file_up/targets/" + b.Addr, "tags"},
	} {
		if got := fmt.Sprint(api.get(t, http.StatusOK, c.path).m[c.key]); !strings.Contains(got, "file") {
			t.Fatalf("GET %s: tags %s, want the file's", c.path, got)
		}
	}

	bad := []struct {
		desc string
		tag  any
		why  string
	}{
		{"empty", "", "must not be empty"},
		{"129 characters", strings.Repeat("x", 129), "at most 128"},
		{"comma", "a,b", "not allowed"},
		{"slash", "a/b", "not allowed"},
		{"space", "a b", "printable"},
		{"control character", "a\x01b", "printable"},
		{"not a string", 5, ""},
	}
	for _, e := range []struct{ method, path string }{
		{http.MethodPost, "/upstreams"}, {http.MethodPatch, "/upstreams/file_up"},
		{http.MethodPost, "/services"}, {http.MethodPatch, "/services/file_svc"},
		{http.MethodPost, "/routes"}, {http.MethodPatch, "/routes/file_route"},
		{http.MethodPost, "/upstreams/file_up/targets"},
	} {
		for _, c := range bad {
			t.Run(e.method+" "+e.path+" "+c.desc, func(t *testing.T) {
				body := map[string]any{"name": "new_one", "host": "example.com", "service": map[string]any{"name": "file_svc"},
					"paths": []string{"/new"}, "target": "127.0.0.1:9999", "tags": []any{"ok", c.tag}}
				if e.method == http.MethodPatch {
					body = map[string]any{"tags": []any{"ok", c.tag}}
				}
				for k := range body {
					if k == "tags" {
						continue
					}
					switch {
					case strings.HasPrefix(e.path, "/upstreams/file_up/targets"):
						if k != "target" {
							delete(body, k)
						}
					case strings.HasPrefix(e.path, "/upstreams"):
						if k != "name" {
							delete(body, k)
						}
					case strings.HasPrefix(e.path, "/services"):
						if k != "name" && k != "host" {
							delete(body, k)
						}
					case strings.HasPrefix(e.path, "/routes"):
						if k != "name" && k != "service" && k != "paths" {
							delete(body, k)
						}
					}
				}
				r := api.json(t, http.StatusBadRequest, e.method, e.path, body)
				why, _ := r.fields()["tags"].(string)
				if !strings.Contains(why, c.why) || r.str("message") == "" {
					t.Fatalf("%s %s: %s", e.method, e.path, r.raw)
				}
			})
		}
	}

	// 128 characters and non-ASCII printable characters are fine.
	long := strings.Repeat("y", 128)
	api.json(t, http.StatusCreated, http.MethodPost, "/services", map[string]any{"name": "api_svc", "host": "example.com", "tags": []string{long, "ünï"}})
	// PATCH replaces the tags (of a file entity too); null clears them.
	api.json(t, http.StatusOK, http.MethodPatch, "/services/file_svc", map[string]any{"tags": []string{"patched"}})
	api.json(t, http.StatusOK, http.MethodPatch, "/upstreams/file_up", map[string]any{"tags": []string{"patched"}})
	api.do(t, http.StatusOK, http.MethodPatch, "/routes/file_route", "application/json", `{"tags": null}`)
	api.form(t, http.StatusOK, http.MethodPatch, "/services/api_svc", "tags[]", "form1", "tags[]", "form2")

	check := func(t *testing.T) {
		t.Helper()
		for _, c := range []struct {
			path string
			want string
		}{
			{"/services/file_svc", "[patched]"}, {"/upstreams/file_up", "[patched]"}, {"/routes/file_route", "<nil>"},
			{"/services/api_svc", "[form1 form2]"},
		} {
			if got := fmt.Sprint(api.get(t, http.StatusOK, c.path).m["tags"]); got != c.want {
				t.Fatalf("GET %s: tags %s, want %s", c.path, got, c.want)
			}
		}
		tgWant(t, "/services?tags=patched", tgNames(api.all(t, "/services?tags=patched")), "file_svc")
		tgWant(t, "/routes?tags=file", tgNames(api.all(t, "/routes?tags=file")))
	}
	check(t)
	g.signal(syscall.SIGTERM)
	if code := g.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	g = n.start()
	api = adAdmin(g)
	check(t)
}
