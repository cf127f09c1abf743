package gateway

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/state"
)

// TestNewRefusesALayerThatFailsValidate: a stored layer is checked by the
// entities' Validate when it is loaded, so a service the admin API would
// refuse does not start the gateway.
func TestNewRefusesALayerThatFailsValidate(t *testing.T) {
	yes := true
	st := &memStore{version: 1, doc: &state.Doc{Services: map[string]*state.Service{
		"plain": {Name: "plain", Protocol: "http", Host: "127.0.0.1", Port: 7003, Retries: 1,
			ConnectTimeout: 1e9, ReadTimeout: 1e9, WriteTimeout: 1e9, TLSVerify: &yes},
	}}}
	_, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop(), Store: st, LoadState: true})
	if err == nil || !strings.Contains(err.Error(), "services.plain.tls_verify: only allowed when protocol is https or grpcs") {
		t.Fatalf("New = %v", err)
	}
	st.doc.Services["plain"].TLSVerify = nil
	if _, err := New(parse(t, twoTargets), Options{Log: zerolog.Nop(), Store: st, LoadState: true}); err != nil {
		t.Fatal(err)
	}
}
