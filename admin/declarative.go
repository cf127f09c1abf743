package admin

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Kong's DB-less /config: GET exports the effective entities as a
// declarative document (config.Export); POST replaces the admin layer
// with a posted document (state.Doc.Config), validated whole by the
// configuration file's decoder and committed through the Controller like
// any other change, so it is atomic, persisted and fleet-wide.
//
// The configuration hash (GET /status configuration_hash, POST
// ?check_hash=1) is the MD5 of the export: two documents that give the
// same entities have the same hash, whatever their formatting.

// codeDeclarativeConfig is Kong's error code for an invalid declarative
// configuration.
const codeDeclarativeConfig = 14

// configKind is one entity kind of the export: it gives the kind's
// effective entities of a copy of the world's configuration the ids the
// API shows, and renders them for POST /config's answer. A new kind
// (plugins, consumers) is one more row of configKinds, besides its row in
// config's declarative kinds.
type configKind struct {
	key    string
	withID func(w *world, f *config.File)
	render func(w *world) map[string]any
}

func configKinds() []configKind {
	k := newKinds()
	return []configKind{
		{"upstreams", func(w *world, f *config.File) {
			f.Upstreams = slices.Clone(f.Upstreams)
			for i := range f.Upstreams {
				u := &f.Upstreams[i]
				u.ID = w.k.upstream.metaOf(w, u.Name).ID
				u.Targets = slices.Clone(u.Targets)
				for j := range u.Targets {
					if u.Targets[j].ID == "" {
						u.Targets[j].ID = targetID(u.Name, u.Targets[j].Target)
					}
				}
			}
		}, renderKind(k.upstream)},
		{"targets", nil, func(w *world) map[string]any {
			out := map[string]any{}
			for i := range w.eff.Upstreams {
				u := &w.eff.Upstreams[i]
				for _, t := range w.targets(u, w.k.upstream.metaOf(w, u.Name), runtime{}) {
					if t.owned {
						out[t.ID] = t.targetOut
					}
				}
			}
			return out
		}},
		{"services", func(w *world, f *config.File) {
			f.Services = withShownIDs(w, w.k.service, f.Services, func(c *config.Service) *string { return &c.ID })
		}, renderKind(k.service)},
		{"routes", func(w *world, f *config.File) {
			f.Routes = withShownIDs(w, w.k.route, f.Routes, func(c *config.Route) *string { return &c.ID })
		}, renderKind(k.route)},
		{"certificates", nil, renderKind(k.cert)},
		{"snis", func(w *world, f *config.File) {
			f.SNIs = withShownIDs(w, w.k.sni, f.SNIs, func(c *config.SNI) *string { return &c.ID })
		}, renderKind(k.sni)},
		{"plugins", nil, renderKind(k.plugin)},
		{"consumers", nil, renderKind(k.consumer)},
		{"keyauth_credentials", nil, renderKind(k.keyAuth)},
	}
}

// withShownIDs is a copy of list whose entities carry the ids the API
// shows for them (by their key), set through id.
func withShownIDs[C, D any](w *world, k *kind[C, D], list []C, id func(c *C) *string) []C {
	list = slices.Clone(list)
	for i := range list {
		*id(&list[i]) = k.metaOf(w, k.key(&list[i])).ID
	}
	return list
}

// renderKind renders every effective entity of a kind by id.
func renderKind[C, D any](k *kind[C, D]) func(w *world) map[string]any {
	return func(w *world) map[string]any {
		out := map[string]any{}
		all := k.all(w.eff)
		for i := range all {
			m := k.metaOf(w, k.key(&all[i]))
			out[m.ID] = k.render(w, &all[i], m)
		}
		return out
	}
}

// exportOf is the declarative document of w's effective entities.
func exportOf(w *world) ([]byte, error) {
	f := *w.eff
	for _, k := range configKinds() {
		if k.withID != nil {
			k.withID(w, &f)
		}
	}
	f.Layer = layerOf(w)
	return config.Export(&f)
}

// configHash is Kong's configuration hash of an export: 32 hex digits.
func configHash(export []byte) string {
	sum := md5.Sum(export)
	return hex.EncodeToString(sum[:])
}

// ConfigurationHash is the hash of the effective configuration the
// Controller holds (GET /status).
// configurationHash is the hash of the effective configuration at gen, the
// configuration generation (which every commit advances). It is computed
// once per generation: an export of every entity costs too much for each
// GET /status (the portal asks every second).
func (a *api) configurationHash(gen uint64) string {
	if a.ctl == nil {
		return strings.Repeat("0", 32)
	}
	a.hash.mu.Lock()
	defer a.hash.mu.Unlock()
	if a.hash.ok && a.hash.gen == gen {
		return a.hash.value
	}
	text, err := exportOf(a.view())
	if err != nil {
		return strings.Repeat("0", 32)
	}
	// The view may be newer than gen (a commit in between): cached under
	// gen, it is recomputed at the next generation anyway.
	a.hash.gen, a.hash.value, a.hash.ok = gen, configHash(text), true
	return a.hash.value
}

func (a *api) getConfig(r *http.Request) (int, any, error) {
	if err := onlyQuery(r); err != nil {
		return 0, nil, err
	}
	text, err := exportOf(a.view())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"config": string(text)}, nil
}

func (a *api) postConfig(r *http.Request) (int, any, error) {
	if err := onlyQuery(r, "check_hash", "flatten_errors"); err != nil {
		return 0, nil, err
	}
	checkHash := r.URL.Query().Get("check_hash") == "1"
	text, err := declarativeBody(r)
	if err != nil {
		return 0, nil, err
	}
	decl, err := config.ParseDeclarative("config", text)
	if err != nil {
		return 0, nil, declarativeError(err, text)
	}
	for attempt := range maxMutateAttempts {
		if attempt > 0 {
			if err := state.BackOff(r.Context(), attempt); err != nil {
				return 0, nil, err
			}
		}
		cur, rev, err := a.ctl.Layer()
		if err != nil {
			return 0, nil, err
		}
		eff, _ := a.ctl.Effective(rev)
		now := a.world(a.ctl.File(), cur, eff)
		doc := &state.Doc{Config: &state.Declarative{Text: string(text)}}
		next := a.world(config.WithEntities(now.file, decl), doc, nil)
		if err := applyLayer(next, decl.Layer, a.now().Unix()); err != nil {
			return 0, nil, err
		}
		export, err := exportOf(next)
		if err != nil {
			return 0, nil, err
		}
		doc.Config.Hash = configHash(export)
		if checkHash {
			if was, err := exportOf(now); err == nil && configHash(was) == doc.Config.Hash {
				return http.StatusNotModified, nil, nil
			}
		}
		_, err = a.ctl.CompareAndSet(r.Context(), rev, doc, &Merged{Base: next.file, Effective: next.eff})
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		w := a.view()
		out := map[string]any{}
		for _, k := range configKinds() {
			out[k.key] = k.render(w)
		}
		return http.StatusCreated, out, nil
	}
	return 0, nil, fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateAttempts)
}

// onlyQuery refuses query parameters other than known.
func onlyQuery(r *http.Request, known ...string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("invalid query string: %v", err)
	}
	for k := range q {
		if !slices.Contains(known, k) {
			return invalidOption(k, "unknown query parameter (known: %s)", strings.Join(known, ", "))
		}
	}
	return nil
}

// declarativeBody is the document of a POST /config body, as Kong takes
// it: a JSON or YAML document (a JSON object with _format_version is the
// document itself), or a config field (JSON, form or multipart, the way
// `curl -F config=@kong.yml` sends it) holding the document's text.
func declarativeBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body too large (limit %d bytes)", mb.Limit)}
		}
		return nil, badRequest("cannot read the request body: %v", err)
	}
	missing := badRequest("expected a declarative configuration")
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(data))
		if err != nil || v.Get("config") == "" {
			return nil, missing
		}
		return []byte(v.Get("config")), nil
	case mt == "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(data), params["boundary"]).ReadForm(int64(len(data)) + 1)
		if err != nil {
			return nil, badRequest("Cannot parse multipart body: %v", err)
		}
		defer func() { _ = form.RemoveAll() }()
		if v := form.Value["config"]; len(v) == 1 {
			return []byte(v[0]), nil
		}
		if fh := form.File["config"]; len(fh) == 1 {
			f, err := fh[0].Open()
			if err != nil {
				return nil, badRequest("Cannot parse multipart body: %v", err)
			}
			defer func() { _ = f.Close() }()
			return io.ReadAll(f)
		}
		return nil, missing
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, missing
	}
	if trimmed[0] == '{' {
		// {"config": "..."} holds the document's text; any other
		// object is the document.
		var wrapped map[string]json.RawMessage
		if json.Unmarshal(trimmed, &wrapped) == nil && len(wrapped) == 1 {
			if raw, ok := wrapped["config"]; ok {
				var s string
				if json.Unmarshal(raw, &s) != nil {
					return nil, fieldError("config", "expected a string")
				}
				return []byte(s), nil
			}
		}
	}
	return data, nil
}

// declarativeError is Kong's 400 for an invalid declarative document:
// code 14, every error in the message, and fields naming each error's
// position ("config:LINE:COL") with its reason, which names the field;
// flattened_errors lists them in order. Given the posted text, each
// error is also placed at its entity as Kong 3 places it: fields nested
// by entity kind and index beside the positions, and each flattened error
// with its entity_type, entity_name, entity_id and errors.
func declarativeError(err error, text []byte) error {
	var list *config.ErrorList
	if !errors.As(err, &list) {
		return &Error{Status: http.StatusBadRequest, Code: codeDeclarativeConfig, Name: "invalid declarative configuration",
			Message: "declarative config is invalid: " + err.Error()}
	}
	fields := map[string]string{}
	nested := map[string]any{}
	spans := declarativeEntities(text)
	flat := make([]map[string]any, 0, len(list.Errors))
	lines := make([]string, 0, len(list.Errors))
	for _, e := range list.Errors {
		at := fmt.Sprintf("%s:%d", e.File, e.Line)
		if e.Col > 0 {
			at += fmt.Sprintf(":%d", e.Col)
		}
		if _, dup := fields[at]; !dup {
			fields[at] = e.Msg
		}
		fe := map[string]any{"position": at, "line": e.Line, "column": e.Col, "message": e.Msg}
		if s := entityOf(spans, e.Line, e.Col); s != nil {
			field, reason := fieldOf(e.Msg)
			placeError(nested, s.path, field, at+": "+reason)
			fe["entity_type"], fe["entity_name"] = s.typ, s.name
			if s.id != "" {
				fe["entity_id"] = s.id
			}
			one := map[string]any{"type": "entity", "message": at + ": " + reason}
			if field != "" {
				one["type"], one["field"] = "field", field
			}
			fe["errors"] = []any{one}
		}
		flat = append(flat, fe)
		lines = append(lines, at+": "+e.Msg)
	}
	out := &Error{Status: http.StatusBadRequest, Code: codeDeclarativeConfig, Name: "invalid declarative configuration",
		Message: "declarative config is invalid: " + strings.Join(lines, "; "), Fields: fields,
		Extra: map[string]any{"flattened_errors": flat}}
	if len(nested) > 0 {
		for k, v := range nestFields(fields) {
			nested[k] = v
		}
		out.Extra["fields"] = nested
	}
	return out
}

// declarativeExample is POST /config's documented example.
func declarativeExample() map[string]any {
	return map[string]any{
		"_format_version": "3.0",
		"upstreams": []any{map[string]any{"name": "example_upstream", "tags": []any{"edge"},
			"targets": []any{map[string]any{"target": "10.0.0.1:8080", "weight": 100}}}},
		"services": []any{map[string]any{"name": "example_service", "host": "example_upstream", "enabled": true,
			"routes": []any{map[string]any{"name": "example_route", "paths": []any{"/"}, "https_redirect_status_code": 426}}}},
	}
}

// The admin layer's own keys in a declarative document: canaries,
// rollouts and weight overrides, in the admin API's shapes (plus the
// service or upstream each belongs to), decoded by the admin API's
// decoders.

// plainOf is v's JSON shape as plain values.
func plainOf(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic("admin: marshal: " + err.Error()) // plain data cannot fail
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic("admin: unmarshal: " + err.Error())
	}
	return m
}

// layerOf is w's admin-layer keys for the export, in a stable order.
func layerOf(w *world) *config.LayerKeys {
	l := &config.LayerKeys{}
	for _, name := range sortedKeys(w.doc.Canaries) {
		c := w.doc.Canaries[name]
		v := map[string]any{"service": name, "upstream": c.Upstream, "percent": c.Percent}
		if len(c.Force) > 0 {
			v["force"] = plainOf(map[string]any{"f": c.Force})["f"]
		}
		if c.StickyBy != "" {
			v["sticky_by"] = c.StickyBy
		}
		l.Canaries = append(l.Canaries, config.LayerItem{Value: v})
	}
	for _, name := range sortedKeys(w.doc.Rollouts) {
		ro := w.doc.Rollouts[name]
		v := plainOf(ro)
		for _, k := range []string{"step_since", "updated_at", "reason"} {
			delete(v, k)
		}
		v["service"] = name
		l.Rollouts = append(l.Rollouts, config.LayerItem{Value: v})
	}
	for _, o := range w.doc.Overrides {
		v := plainOf(o)
		delete(v, "created_at")
		l.Overrides = append(l.Overrides, config.LayerItem{Value: v})
	}
	if len(l.Canaries)+len(l.Rollouts)+len(l.Overrides) == 0 {
		return nil
	}
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// layerErrors collects the layer keys' errors at their items' positions.
type layerErrors struct{ list config.ErrorList }

func (e *layerErrors) add(key string, it config.LayerItem, err error) {
	msg := err.Error()
	var ae *Error
	if errors.As(err, &ae) && len(ae.Fields) > 0 {
		parts := make([]string, 0, len(ae.Fields))
		for _, f := range sortedKeys(ae.Fields) {
			parts = append(parts, f+": "+ae.Fields[f])
		}
		msg = strings.Join(parts, "; ")
	}
	e.list.Errors = append(e.list.Errors, config.Error{File: "config", Line: it.Pos.Line, Col: it.Pos.Col, Msg: key + ": " + msg})
}

// itemObj reads a layer item as a JSON body (numbers as json.Number).
func itemObj(it config.LayerItem) (*obj, error) {
	b, err := json.Marshal(it.Value)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeJSONValue(dec, "", 0)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return newObj(m, false), nil
}

// ownerOf pops the item's owner key (service or upstream): a name or an
// id.
func ownerOf(o *obj, key string) (string, error) {
	v, present := o.get(key)
	if !present || v == nil {
		return "", fieldError(key, "required field missing")
	}
	s, why := asString(v)
	if why != "" {
		return "", fieldError(key, "%s", why)
	}
	return s, nil
}

// eachOwned runs fn on each item of kind with the item's object and the
// name its owner field gives (a service, an upstream); what goes wrong is
// added to errs under the item.
func eachOwned(errs *layerErrors, kind string, items []config.LayerItem, owner string, fn func(it config.LayerItem, o *obj, key string) error) {
	for _, it := range items {
		o, err := itemObj(it)
		if err == nil {
			var key string
			if key, err = ownerOf(o, owner); err == nil {
				err = fn(it, o, key)
			}
		}
		if err != nil {
			errs.add(kind, it, err)
		}
	}
}

// applyLayer decodes the document's layer keys into w's Doc, checking
// each against w (the document's entities); now stamps them.
func applyLayer(w *world, l *config.LayerKeys, now int64) error {
	if l == nil {
		return nil
	}
	var errs layerErrors
	eachOwned(&errs, "canaries", l.Canaries, "service", func(_ config.LayerItem, o *obj, key string) error {
		s, _, ok := w.service(key)
		if !ok {
			return fieldError("service", "service '%s' does not exist", key)
		}
		if w.doc.Canaries[s.Name] != nil {
			return fieldError("service", "service '%s' has a canary already", s.Name)
		}
		c := &state.Canary{UpdatedAt: now}
		if err := o.decode(func(o *obj) { decodeCanary(o, c) }); err != nil {
			return err
		}
		if err := w.checkCanary(s.Name, c); err != nil {
			return err
		}
		w.doc.Canaries[s.Name] = c
		return nil
	})
	eachOwned(&errs, "rollouts", l.Rollouts, "service", func(_ config.LayerItem, o *obj, key string) error {
		s, _, ok := w.service(key)
		if !ok {
			return fieldError("service", "service '%s' does not exist", key)
		}
		if w.doc.Canaries[s.Name] == nil {
			return fieldError("service", "service '%s' has no canary (give one in canaries)", s.Name)
		}
		ro := &state.Rollout{MaxErrorRateIncrease: defaultMaxErrorRateIncrease, MaxP99Ratio: defaultMaxP99Ratio, MinRequests: defaultMinRequests,
			State: state.RolloutRunning, StepSince: now, UpdatedAt: now}
		f := fields{}
		o.setString("state", &ro.State, state.RolloutRunning, oneOf(state.RolloutStates()...))
		o.setInt("step", &ro.Step, 0, 0, config.MaxMinRequests)
		if err := o.decode(func(o *obj) {
			o.ignore("service", "state", "step")
			decodeRollout(o, ro)
		}); err != nil {
			return err
		}
		if err := o.err(); err != nil {
			return err
		}
		if ro.Step >= len(ro.Steps) {
			f.add("step", "must be below the number of steps (%d)", len(ro.Steps))
			return f.err()
		}
		w.doc.Rollouts[s.Name] = ro
		return nil
	})
	eachOwned(&errs, "overrides", l.Overrides, "upstream", func(it config.LayerItem, o *obj, key string) error {
		u, _, ok := w.upstream(key)
		if !ok {
			return fieldError("upstream", "upstream '%s' does not exist", key)
		}
		ov := state.Override{Upstream: u.Name, CreatedAt: now}
		if v, ok := it.Value["id"].(string); ok && config.IsUUID(v) {
			ov.ID = strings.ToLower(v)
		} else if it.Value["id"] != nil {
			return fieldError("id", "expected a UUID")
		} else {
			ov.ID = newID()
		}
		if slices.ContainsFunc(w.doc.Overrides, func(x state.Override) bool { return x.ID == ov.ID }) {
			return fieldError("id", "duplicate override id %s", ov.ID)
		}
		apply, err := overrideDecoder(o)
		if err != nil {
			return err
		}
		if err := apply(&ov); err != nil {
			return err
		}
		w.doc.Overrides = append(w.doc.Overrides, ov)
		return w.checkShares(u.Name)
	})
	if len(errs.list.Errors) > 0 {
		return declarativeError(&errs.list, nil)
	}
	return nil
}
