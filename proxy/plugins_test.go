package proxy

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestPluginsGRPC: a plugin's answer to a gRPC request is a gRPC error
// with Kong's status mapping (401 → UNAUTHENTICATED, 429 →
// RESOURCE_EXHAUSTED); an authenticated call goes through.
func TestPluginsGRPC(t *testing.T) {
	echo := startEcho(t, "a")
	f := newGRPCFixture(t, grpcSetup{targets: []string{echo.addr}, plugins: testChain(t,
		testPlugin(t, "key-auth", nil),
		testPlugin(t, "rate-limiting", map[string]any{"hour": 1, "limit_by": "consumer"}),
	)})
	ctx := testCtx(t)
	_, err := f.say(ctx, "x")
	if s := status.Convert(err); s.Code() != codes.Unauthenticated || s.Message() != "No API key found in request" {
		t.Fatalf("no key: %v", err)
	}
	keyed := metadata.AppendToOutgoingContext(ctx, "apikey", "bench-key")
	if out, err := f.say(keyed, "hello"); err != nil || out == "" {
		t.Fatalf("with a key: %q %v", out, err)
	}
	_, err = f.say(keyed, "again")
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || s.Message() != "API rate limit exceeded" {
		t.Fatalf("over the limit: %v", err)
	}
}
