package admin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Fleet is what the /fleet endpoints steer: the sidecar's gateway group
// (published versions, the draft, staged publishes) and the group's
// reports. Served only when Options.Fleet is set (a sidecar with
// fleet.group). Errors: *Error as is; *state.RefusedError is a 409;
// anything else a 500.
type Fleet interface {
	// FleetStatus is GET /fleet for group ("" for the sidecar's own).
	FleetStatus(ctx context.Context, group string) (FleetStatus, error)
	// FleetVersions lists the kept versions, newest first (no Docs).
	FleetVersions(ctx context.Context) ([]state.Version, error)
	// FleetVersion is one version with its Doc.
	FleetVersion(ctx context.Context, n uint64) (*state.Version, error)
	// FleetDraft is the group's draft and its revision.
	FleetDraft(ctx context.Context) (*state.Doc, uint64, error)
	// FleetPublish publishes the draft as the next version (validated
	// first: a draft that does not build is an *Error 400).
	FleetPublish(ctx context.Context, p FleetPublish) (state.Version, error)
	// FleetRollback publishes version p.Version's content as the next
	// version; p.Version 0 rolls back the staged publish that runs.
	FleetRollback(ctx context.Context, p FleetRollback) (*state.Head, *state.Version, error)
	// FleetPromote publishes a version's content, unchanged, to another
	// group.
	FleetPromote(ctx context.Context, p FleetPromote) (state.Version, error)
	// FleetStage widens the staged publish that runs.
	FleetStage(ctx context.Context, p FleetStageChange) (*state.Head, error)
}

// FleetPublish is POST /fleet/publish.
type FleetPublish struct {
	Author, Message string
	// Stage, when set, publishes to its share of the group first.
	Stage *state.Stage
}

// FleetRollback is POST /fleet/rollback.
type FleetRollback struct {
	Author, Message string
	Version         uint64
}

// FleetPromote is POST /fleet/promote.
type FleetPromote struct {
	Author, Message string
	Version         uint64
	ToGroup         string
}

// FleetStageChange is POST /fleet/stage: the share grows to Percent
// and/or takes in Sidecars.
type FleetStageChange struct {
	Author   string
	Percent  *float64
	Sidecars []string
}

// FleetStatus is GET /fleet: the group's head and who runs what.
type FleetStatus struct {
	// Group is the group shown; ID the answering sidecar.
	Group string `json:"group"`
	ID    string `json:"id"`
	// AutoPublish: the group publishes every admin change at once. For
	// the answering sidecar's own group it is its fleet.auto_publish; for
	// another group, true when each of its live sidecars reports it.
	AutoPublish bool `json:"auto_publish"`
	// Version is the group's stable version, Latest the last number used.
	Version uint64       `json:"version"`
	Latest  uint64       `json:"latest"`
	Stage   *state.Stage `json:"stage"`
	// Sidecars are the group's live sidecars, by id.
	Sidecars []FleetSidecar `json:"sidecars"`
	// Drifted counts the sidecars with Drift set.
	Drifted int `json:"drifted"`
}

// FleetSidecar is one sidecar's report with its drift: it does not run
// the version its group's head asks of it, or failed to apply it.
type FleetSidecar struct {
	state.Report
	Drift       bool   `json:"drift"`
	DriftReason string `json:"drift_reason,omitempty"`
}

// Stage defaults (POST /fleet/publish's stage).
const (
	defaultStageInterval      = 30 * time.Second
	defaultStageMaxErrorRate  = 0.05
	defaultStageMinRequests   = 20
	maxStageSidecars          = 1000
	authorHeader              = "Outrigger-Author"
	defaultAuthor             = "admin"
	maxFleetMessage           = 1024
	fleetExampleVersion       = 1
	fleetExampleGroup         = "payments-prod"
	fleetExampleStagePercent  = 34
	fleetExampleStageSidecars = "host@127.0.0.1:8000"
)

// fleetRoutes are the /fleet endpoints (none without a Fleet).
func (a *api) fleetRoutes() []endpoint {
	if a.o.Fleet == nil {
		return nil
	}
	return []endpoint{
		{method: http.MethodGet, path: "/fleet", op: "getFleet", tag: "fleet", summary: "The gateway group's versions in force and every live sidecar's report (?group= another group)", out: "object", ok: http.StatusOK, h: a.getFleet},
		{method: http.MethodGet, path: "/fleet/versions", op: "listFleetVersions", tag: "fleet", summary: "The group's kept versions, newest first", out: "object", ok: http.StatusOK, h: a.listFleetVersions},
		{method: http.MethodGet, path: "/fleet/versions/{version}", op: "getFleetVersion", tag: "fleet", summary: "One version with its content", out: "object", ok: http.StatusOK, h: a.getFleetVersion},
		{method: http.MethodGet, path: "/fleet/draft", op: "getFleetDraft", tag: "fleet", summary: "The group's draft (what POST /fleet/publish publishes)", out: "object", ok: http.StatusOK, h: a.getFleetDraft},
		{method: http.MethodPost, path: "/fleet/publish", op: "publishFleet", tag: "fleet", summary: "Publish the draft as the next version, to the whole group or staged", in: "object", out: "object", ok: http.StatusCreated,
			example: map[string]any{"message": "raise timeouts", "stage": map[string]any{"percent": fleetExampleStagePercent, "steps": []any{100}, "interval": "30s"}}, h: a.publishFleet},
		{method: http.MethodPost, path: "/fleet/rollback", op: "rollbackFleet", tag: "fleet", summary: "Publish an earlier version's content as the next version (no version: roll back the running staged publish)", in: "object", out: "object", ok: http.StatusCreated,
			example: map[string]any{"version": fleetExampleVersion, "message": "back to the last good one"}, h: a.rollbackFleet},
		{method: http.MethodPost, path: "/fleet/promote", op: "promoteFleet", tag: "fleet", summary: "Publish a version, unchanged, to another group", in: "object", out: "object", ok: http.StatusCreated,
			example: map[string]any{"version": fleetExampleVersion, "to_group": fleetExampleGroup}, h: a.promoteFleet},
		{method: http.MethodPost, path: "/fleet/stage", op: "widenFleetStage", tag: "fleet", summary: "Widen the running staged publish (percent, sidecars)", in: "object", out: "object", ok: http.StatusOK,
			example: map[string]any{"sidecars": []any{fleetExampleStageSidecars}}, h: a.widenFleetStage},
	}
}

func (a *api) getFleet(r *http.Request) (int, any, error) {
	group := r.URL.Query().Get("group")
	if group != "" {
		if err := config.CheckFleetName(group); err != nil {
			return 0, nil, invalidOption("group", "%v", err)
		}
	}
	st, err := a.o.Fleet.FleetStatus(r.Context(), group)
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusOK, st, nil
}

func (a *api) listFleetVersions(r *http.Request) (int, any, error) {
	vs, err := a.o.Fleet.FleetVersions(r.Context())
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusOK, map[string]any{"data": vs}, nil
}

func (a *api) getFleetVersion(r *http.Request) (int, any, error) {
	n, err := strconv.ParseUint(r.PathValue("version"), 10, 64)
	if err != nil || n == 0 {
		return 0, nil, notFound()
	}
	v, err := a.o.Fleet.FleetVersion(r.Context(), n)
	if err != nil {
		if _, ok := err.(*state.RefusedError); ok {
			return 0, nil, &Error{Status: http.StatusNotFound, Message: err.Error()}
		}
		return 0, nil, fleetErr(err)
	}
	return http.StatusOK, v, nil
}

func (a *api) getFleetDraft(r *http.Request) (int, any, error) {
	d, rev, err := a.o.Fleet.FleetDraft(r.Context())
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusOK, map[string]any{"revision": rev, "hash": state.Hash(d), "doc": d}, nil
}

// who reads author and message: the body's, else the Outrigger-Author
// header and "admin".
func who(r *http.Request, o *obj) (author, message string) {
	author = r.Header.Get(authorHeader)
	if author == "" {
		author = defaultAuthor
	}
	o.setString("author", &author, author, nil)
	o.setString("message", &message, "", func(s string) (string, error) {
		if len(s) > maxFleetMessage {
			return "", errText("must be at most 1024 bytes")
		}
		return s, nil
	})
	return author, message
}

// readFleetBody reads a fleet change's body and its author and message
// (by who).
func readFleetBody(r *http.Request) (o *obj, author, message string, err error) {
	b, err := readBody(r)
	if err != nil {
		return nil, "", "", err
	}
	o = newObj(b.m, b.form)
	author, message = who(r, o)
	return o, author, message, nil
}

// fleetVersion reads a fleet change's version (zero when absent).
func fleetVersion(o *obj) uint64 {
	var n int
	o.setInt("version", &n, 0, 1, config.MaxExactInteger)
	return uint64(n)
}

type errText string

func (e errText) Error() string { return string(e) }

func (a *api) publishFleet(r *http.Request) (int, any, error) {
	o, author, message, err := readFleetBody(r)
	if err != nil {
		return 0, nil, err
	}
	p := FleetPublish{Author: author, Message: message}
	if c, present, null := o.child("stage"); present && !null && c != nil {
		p.Stage = decodeStage(c)
	}
	o.unknown()
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	v, err := a.o.Fleet.FleetPublish(r.Context(), p)
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusCreated, v, nil
}

// decodeStage reads a stage: percent and/or sidecars (at least one), then
// steps, interval and the bounds.
func decodeStage(o *obj) *state.Stage {
	st := &state.Stage{Interval: state.Duration(defaultStageInterval), MaxErrorRateIncrease: defaultStageMaxErrorRate, MinRequests: defaultStageMinRequests}
	o.setFloat("percent", &st.Percent, 0, 0, config.MaxPercent)
	o.setStrings("sidecars", &st.Sidecars, checkSidecarID)
	if len(st.Sidecars) > maxStageSidecars {
		o.fail("sidecars", "at most %d", maxStageSidecars)
	}
	ro := state.Rollout{Steps: nil, Interval: st.Interval}
	if o.has("steps") {
		decodeSteps(o, &ro)
		st.Steps = ro.Steps
		for i, s := range st.Steps {
			if s <= st.Percent && i == 0 {
				o.fail("steps", "must start above percent (%s)", fmtNum(st.Percent))
			}
		}
	}
	o.setInterval("interval", &st.Interval)
	o.setFloat("max_error_rate_increase", &st.MaxErrorRateIncrease, defaultStageMaxErrorRate, 0, config.MaxErrorRateIncrease)
	o.setInt("min_requests", &st.MinRequests, defaultStageMinRequests, 0, config.MaxMinRequests)
	o.unknown()
	if !o.has("percent") && !o.has("sidecars") {
		o.errs.add(o.key("percent"), "percent or sidecars required")
	}
	return st
}

// decodeSteps reads steps as a rollout's (strictly increasing percents).
func decodeSteps(o *obj, ro *state.Rollout) {
	v, present := o.get("steps")
	if !present || v == nil {
		return
	}
	list, why := listOfNumbers(v)
	if why != "" {
		o.fail("steps", "%s", why)
	}
	for i, item := range list {
		f, why := asFloat(item)
		switch {
		case why != "":
			o.fail("steps", "item %d: %s", i+1, why)
		case f <= 0 || f > config.MaxPercent:
			o.fail("steps", "item %d: value should be above 0 and at most %d", i+1, config.MaxPercent)
		case i > 0 && f <= ro.Steps[i-1]:
			o.fail("steps", "must be strictly increasing")
		}
		ro.Steps = append(ro.Steps, f)
	}
}

func checkSidecarID(s string) (string, error) {
	if err := config.CheckFleetName(s); err != nil {
		return "", err
	}
	return s, nil
}

func (a *api) rollbackFleet(r *http.Request) (int, any, error) {
	o, author, message, err := readFleetBody(r)
	if err != nil {
		return 0, nil, err
	}
	p := FleetRollback{Author: author, Message: message, Version: fleetVersion(o)}
	o.unknown()
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	h, v, err := a.o.Fleet.FleetRollback(r.Context(), p)
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	if v == nil {
		return http.StatusOK, h, nil
	}
	return http.StatusCreated, v, nil
}

func (a *api) promoteFleet(r *http.Request) (int, any, error) {
	o, author, message, err := readFleetBody(r)
	if err != nil {
		return 0, nil, err
	}
	p := FleetPromote{Author: author, Message: message, Version: fleetVersion(o)}
	o.setString("to_group", &p.ToGroup, "", checkSidecarID)
	o.unknown()
	if p.Version == 0 && !o.has("version") {
		o.errs.add("version", "required field missing")
	}
	if p.ToGroup == "" && !o.has("to_group") {
		o.errs.add("to_group", "required field missing")
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	v, err := a.o.Fleet.FleetPromote(r.Context(), p)
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusCreated, v, nil
}

func (a *api) widenFleetStage(r *http.Request) (int, any, error) {
	o, author, _, err := readFleetBody(r)
	if err != nil {
		return 0, nil, err
	}
	p := FleetStageChange{Author: author}
	if o.has("percent") {
		var f float64
		o.setFloat("percent", &f, 0, 0, config.MaxPercent)
		p.Percent = &f
	}
	o.setStrings("sidecars", &p.Sidecars, checkSidecarID)
	o.unknown()
	if p.Percent == nil && len(p.Sidecars) == 0 {
		o.errs.add("percent", "percent or sidecars required")
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	h, err := a.o.Fleet.FleetStage(r.Context(), p)
	if err != nil {
		return 0, nil, fleetErr(err)
	}
	return http.StatusOK, h, nil
}

// fleetErr maps a refusal to 409.
func fleetErr(err error) error {
	if re, ok := err.(*state.RefusedError); ok {
		return conflict("%s", re.Reason)
	}
	return err
}

// withChange is r's context carrying who changes what (a fleet group
// that publishes automatically records it with the version).
func withChange(r *http.Request) context.Context {
	author := r.Header.Get(authorHeader)
	if author == "" {
		author = defaultAuthor
	}
	return state.WithChange(r.Context(), state.Change{Author: author, Message: r.Method + " " + r.URL.Path})
}
