package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// world is the configuration as the API shows it: the file, the admin
// layer and their merge.
type world struct {
	file    *config.File
	doc     *state.Doc
	eff     *config.File
	started int64 // created_at of the file's entities
	k       *kinds
	merge   func(*config.File, *state.Doc) *config.File // refresh's (api.merge)
}

func newWorld(file *config.File, doc *state.Doc, started int64) *world {
	return makeWorld(file, doc, nil, state.Merge, started)
}

// world is the API's world of file and doc; eff, when not nil, is their
// merge already made (the Controller's Effective), else a.merge makes it.
func (a *api) world(file *config.File, doc *state.Doc, eff *config.File) *world {
	return makeWorld(file, doc, eff, a.merge, a.started)
}

func makeWorld(file *config.File, doc *state.Doc, eff *config.File, merge func(*config.File, *state.Doc) *config.File, started int64) *world {
	if file == nil {
		file = config.Default()
	}
	if doc == nil {
		doc = &state.Doc{}
	}
	if doc.Upstreams == nil {
		doc.Upstreams = map[string]*config.Upstream{}
	}
	if doc.Services == nil {
		doc.Services = map[string]*state.Service{}
	}
	if doc.Routes == nil {
		doc.Routes = map[string]*state.Route{}
	}
	if doc.Canaries == nil {
		doc.Canaries = map[string]*state.Canary{}
	}
	if doc.Rollouts == nil {
		doc.Rollouts = map[string]*state.Rollout{}
	}
	if doc.Marks == nil {
		doc.Marks = map[string]map[string]string{}
	}
	if doc.Certificates == nil {
		doc.Certificates = map[string]*state.Certificate{}
	}
	initPluginDocs(doc)
	if doc.SNIs == nil {
		doc.SNIs = map[string]*state.SNI{}
	}
	w := &world{file: file, doc: doc, eff: eff, started: started, k: newKinds(), merge: merge}
	if eff == nil {
		w.refresh()
	}
	return w
}

// refresh recomputes the merge after the Doc changed.
func (w *world) refresh() { w.eff = w.merge(w.file, w.doc) }

// view returns the current world (outside Mutate).
func (a *api) view() *world {
	file := a.ctl.File()
	doc, eff := a.ctl.View()
	return a.world(file, doc, eff)
}

// maxMutateAttempts bounds how often mutate redoes a change the layer
// moved under.
const maxMutateAttempts = 16

// mutate runs fn on a copy of the Controller's layer and commits the
// world fn left with CompareAndSet (the one persisted); when the layer
// moved on meanwhile, fn runs again on the new one, after a random wait
// (state.BackOff) so that racing writers do not collide in lockstep. fn
// looks up (in the layer in force's merge, Effective) and applies; its
// errors are returned as is. The world returned shows the merge CompareAndSet built: the
// change is merged once.
func (a *api) mutate(r *http.Request, fn func(w *world) error) (*world, error) {
	for attempt := range maxMutateAttempts {
		if attempt > 0 {
			if err := state.BackOff(r.Context(), attempt); err != nil {
				return nil, err
			}
		}
		d, rev, err := a.ctl.Layer()
		if err != nil {
			return nil, err
		}
		eff, _ := a.ctl.Effective(rev)
		w := a.world(a.ctl.File(), d, eff)
		if err := fn(w); err != nil {
			return nil, err
		}
		eff, err = a.ctl.CompareAndSet(r.Context(), rev, w.doc, nil)
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w.eff = eff
		return w, nil
	}
	return nil, fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateAttempts)
}

// Entity kinds, as used in derived ids.
const (
	kindUpstream = "upstream"
	kindService  = "service"
	kindRoute    = "route"
	kindTarget   = "target"
)

// page is a list request's query: size, the sort key to start after and
// the tag filter.
type page struct {
	size      int
	sizeGiven bool
	after     string
	hasAfter  bool
	tags      tagFilter
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Whether a list's items carry tags (and so take ?tags=).
const (
	untagged = false
	tagged   = true
)

// tagFilter is Kong's ?tags=: "a,b" keeps the items carrying every tag,
// "a/b" those carrying any of them. The zero value keeps everything.
type tagFilter struct {
	tags []string
	any  bool
	raw  string // as given, carried into next
}

// keep reports whether an item carrying tags passes the filter.
func (f tagFilter) keep(tags []string) bool {
	if len(f.tags) == 0 {
		return true
	}
	for _, t := range f.tags {
		if slices.Contains(tags, t) == f.any {
			return f.any
		}
	}
	return !f.any
}

// parseTagFilter reads a ?tags= value; mixing ',' and '/' is refused, as
// in Kong.
func parseTagFilter(s string) (tagFilter, error) {
	if strings.Contains(s, ",") && strings.Contains(s, "/") {
		return tagFilter{}, invalidOption("tags", "invalid filter syntax: use a,b (all of them) or a/b (any of them), not both")
	}
	f := tagFilter{any: strings.Contains(s, "/"), raw: s}
	sep := ","
	if f.any {
		sep = "/"
	}
	for _, t := range strings.Split(s, sep) {
		if err := config.CheckTag(t); err != nil {
			return tagFilter{}, invalidOption("tags", "%v", err)
		}
		f.tags = append(f.tags, t)
	}
	return f, nil
}

// parsePage reads a list's query: size, offset and, when the items carry
// tags, tags. Any other parameter (or one given twice) is a 400 naming it,
// so that a misspelt filter never lists everything.
func parsePage(r *http.Request, withTags bool) (page, error) {
	p := page{size: defaultPageSize}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return p, badRequest("invalid query string: %v", err)
	}
	known := []string{"size", "offset"}
	if withTags {
		known = append(known, "tags")
	}
	names := sortedKeys(q)
	for _, k := range names {
		switch {
		case k == "tags" && !withTags:
			return p, invalidOption(k, "not supported here: these items carry no tags")
		case !slices.Contains(known, k):
			return p, invalidOption(k, "unknown query parameter (known: %s)", strings.Join(known, ", "))
		case len(q[k]) > 1:
			return p, invalidOption(k, "given more than once")
		}
	}
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return p, &Error{Status: http.StatusBadRequest, Code: codeInvalidSize, Name: "invalid size",
				Message: "size must be an integer between 1 and 1000", Fields: map[string]string{"size": "must be an integer between 1 and 1000"}}
		}
		p.size, p.sizeGiven = n, true
	}
	if s := q.Get("offset"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || !validOffsetKey(b) {
			return p, &Error{Status: http.StatusBadRequest, Code: codeInvalidOffset, Name: "invalid offset",
				Message: "'" + s + "' is not a valid offset", Fields: map[string]string{"offset": "invalid offset"}}
		}
		p.after, p.hasAfter = string(b), true
	}
	if vs, ok := q["tags"]; ok {
		if p.tags, err = parseTagFilter(vs[0]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// validOffsetKey tells whether b can be a paging key: every key is UTF-8
// made of printable characters (a name, an address, an id), joined by NUL
// where a key has parts (tags), never starting with one; so that a token
// which merely happens to be base64 is refused as Kong refuses it rather
// than listing an empty page.
func validOffsetKey(b []byte) bool {
	if len(b) == 0 || b[0] == 0 || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r != 0 && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// list is a Kong list answer.
type list struct {
	Data   []any   `json:"data"`
	Next   *string `json:"next"`
	Offset string  `json:"offset,omitempty"`
	// Total and NodeID are only in Kong's health lists: the number of
	// items over every page, and the node that answers.
	Total  *int   `json:"total,omitempty"`
	NodeID string `json:"node_id,omitempty"`
}

// paginate sorts items by key and returns the page p asks for, with next
// set when more follow.
func paginate[T any](r *http.Request, p page, items []T, key func(T) string) list {
	slices.SortStableFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	start := 0
	if p.hasAfter {
		start, _ = slices.BinarySearchFunc(items, p.after, func(t T, k string) int { return strings.Compare(key(t), k) })
		for start < len(items) && key(items[start]) <= p.after {
			start++
		}
	}
	end := min(start+p.size, len(items))
	out := list{Data: make([]any, 0, end-start)}
	for _, it := range items[start:end] {
		out.Data = append(out.Data, it)
	}
	if end < len(items) {
		tok := base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
		q := url.Values{"offset": {tok}}
		if p.sizeGiven {
			q.Set("size", strconv.Itoa(p.size))
		}
		if p.tags.raw != "" {
			q.Set("tags", p.tags.raw)
		}
		next := r.URL.Path + "?" + q.Encode()
		out.Next, out.Offset = &next, tok
	}
	return out
}
