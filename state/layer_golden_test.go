package state_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// TestLayerGoldenRoundTrip: a layer written by earlier versions (services
// and routes in the persisted shape, timeouts in milliseconds) loads into
// the configuration's own types and saves back byte for byte.
func TestLayerGoldenRoundTrip(t *testing.T) {
	want, err := os.ReadFile("testdata/layer-services-routes.json")
	if err != nil {
		t.Fatal(err)
	}
	var d state.Doc
	if err := json.Unmarshal(want, &d); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(&d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, '\n'); !bytes.Equal(got, want) {
		t.Errorf("re-saved layer differs:\n%s\nwant\n%s", got, want)
	}
	s := d.Services["api"]
	if s.ID != "0d3c8f1e-52f3-4c9b-9a43-8f1e2a7c6b01" || s.CreatedAt != 1700000000 || s.UpdatedAt != 1700000100 {
		t.Errorf("meta %+v", s.Meta)
	}
	if s.ConnectTimeout.D() != 1500*time.Millisecond || s.ReadTimeout.D() != time.Minute || s.WriteTimeout.D() != 2*time.Millisecond {
		t.Errorf("timeouts %v %v %v", s.ConnectTimeout.D(), s.ReadTimeout.D(), s.WriteTimeout.D())
	}
	if s.TLSVerifyDepth == nil || *s.TLSVerifyDepth != 0 || s.ClientCertificate == nil || s.ClientCertificate.KeyFile != "/k.pem" {
		t.Errorf("tls %+v", s)
	}
	if !d.Services["gone"].Deleted {
		t.Error("tombstone lost")
	}
	eff := state.Merge(&config.File{}, &d)
	if len(eff.Services) != 2 || eff.Services[0].Name != "api" || eff.Services[1].Name != "plain" {
		t.Fatalf("effective services %+v", eff.Services)
	}
	if len(eff.Routes) != 2 {
		t.Fatalf("effective routes %+v", eff.Routes)
	}
	// A route written before path_handling and https_redirect_status_code
	// existed gets their defaults.
	old := eff.Routes[0]
	if old.Name != "old" || old.PathHandling != config.DefaultPathHandling || old.HTTPSRedirectStatusCode != config.DefaultHTTPSRedirect {
		t.Errorf("old route %+v", old)
	}
}

// TestLayerValidate: a stored layer is checked by the entities' own
// Validate, every problem reported by its path; tombstones are not.
func TestLayerValidate(t *testing.T) {
	yes := true
	d := &state.Doc{
		Services: map[string]*state.Service{
			"plain": {Name: "plain", Protocol: "http", Host: "h", Port: 80, TLSVerify: &yes},
			"gone":  {Meta: state.Meta{Deleted: true}, Name: "gone", Protocol: "http", TLSVerify: &yes},
		},
		Routes: map[string]*state.Route{"r": {Name: "r", Service: "plain"}, "ok": {Name: "ok", Paths: []string{"/"}}},
	}
	err := d.Validate()
	want := "admin state: services.plain.tls_verify: only allowed when protocol is https or grpcs; routes.r: " + config.NoMatcher
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
	delete(d.Services, "plain")
	delete(d.Routes, "r")
	if err := d.Validate(); err != nil {
		t.Errorf("valid layer: %v", err)
	}
}
