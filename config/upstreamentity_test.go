package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestUpstreamValidate: every problem between an upstream's settings is
// reported with its field path, in field order.
func TestUpstreamValidate(t *testing.T) {
	u := DefaultUpstream()
	if ps := u.Validate(); ps != nil {
		t.Fatalf("defaults: %v", ps)
	}
	u.HashOn, u.HashFallback = "cookie", "header"
	u.SlowStart = &SlowStart{Aggression: 1}
	u.Healthchecks.Active.Enabled, u.Healthchecks.Active.GRPCService = true, "pkg.Echo"
	u.Healthchecks.Passive.Enabled, u.Healthchecks.Passive.MaxEjectionTime = true, time.Second
	u.RetryPolicy = &RetryPolicy{BackoffBase: time.Second, BackoffMax: time.Millisecond}
	ps := u.Validate()
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.Field)
	}
	want := []string{"hash_fallback", "hash_on_cookie", "hash_on_header", "slow_start.window", "healthchecks.active.grpc_service",
		"healthchecks.passive.max_ejection_time", "retry_policy.retry_backoff.max_interval"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	const text = "hash_fallback: must be none when hash_on is cookie; hash_on_cookie: required when hash_on is cookie; " +
		"hash_on_header: required when hash_fallback is header; slow_start.window: required field missing; " +
		"healthchecks.active.grpc_service: only used by checks of type grpc or grpcs (type is http); " +
		"healthchecks.passive.max_ejection_time: 1s is less than base_ejection_time 30s; " +
		"retry_policy.retry_backoff.max_interval: 1ms is less than base_interval 1s"
	if err := ProblemsError(ps); err == nil || err.Error() != text {
		t.Errorf("error %q\nwant  %q", err, text)
	}
}

// TestUpstreamMetaOnce: the meta of an upstream and its targets
// round-trips (TestMetaNotShadowed checks that no field shadows it), and
// positions stay out of the JSON.
func TestUpstreamMetaOnce(t *testing.T) {
	in := Upstream{Meta: Meta{ID: "u", CreatedAt: 1, UpdatedAt: 2, Deleted: true}, Name: "n", Pos: Pos{Line: 3, Col: 4},
		Targets: []Target{{Meta: Meta{ID: "t", CreatedAt: 5}, Target: "a:1", Pos: Pos{Line: 6}}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"u","created_at":1,"updated_at":2,"deleted":true,"name":"n","targets":[{"id":"t","created_at":5,"updated_at":0,"target":"a:1","weight":0}]}`
	if string(b) != want {
		t.Errorf("%s\nwant %s", b, want)
	}
	var back Upstream
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	in.Pos, in.Targets[0].Pos = Pos{}, Pos{}
	if !reflect.DeepEqual(back, in) {
		t.Errorf("back %+v, want %+v", back, in)
	}
}
