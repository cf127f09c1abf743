package proxy

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGRPCReplayGivesEachAttemptItsOwnBody: after a replay is set up, the
// body the earlier attempt's transport holds (x/net's body writer may go
// on reading it after RoundTrip returned) fails with errBodyMoved; it
// read the new attempt's bytes before, through the one shared body (a race
// seen by -race in TestGRPCRetryOnStatuses, and bytes lost to the retry).
func TestGRPCReplayGivesEachAttemptItsOwnBody(t *testing.T) {
	rs := &reqState{}
	rs.grpc.replay = &replayBody{src: io.NopCloser(strings.NewReader("hello"))}
	rs.body.rc = rs.grpc.replay.first()
	rs.grpc.body = &rs.body
	req := httptest.NewRequest("POST", "/p.S/M", nil)
	req.Body = &rs.body
	earlier := req.Body
	if !(roundTripper{}).replayable(req, rs, true) {
		t.Fatal("a body within the replay limit is not replayable")
	}
	if req.Body == earlier {
		t.Fatal("the next attempt reads through the earlier attempt's body")
	}
	var p [16]byte
	if n, err := earlier.Read(p[:]); !errors.Is(err, errBodyMoved) {
		t.Fatalf("the earlier attempt's body read %q, %v; want errBodyMoved", p[:n], err)
	}
	got, err := io.ReadAll(req.Body)
	if err != nil || string(got) != "hello" {
		t.Fatalf("the next attempt read %q, %v; want the whole body", got, err)
	}
}
