package state

import (
	"context"
	"errors"
	"testing"
)

// A retry that waits for its turn gives up as soon as its request does.
func TestBackOffEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := BackOff(ctx, 16); !errors.Is(err, context.Canceled) {
		t.Fatalf("BackOff on an ended context: %v", err)
	}
	if err := BackOff(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
}
