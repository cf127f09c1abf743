package state

import (
	"context"
	"errors"
	"testing"
)

// A retry that waits for its turn gives up as soon as its request does,
// even when its random wait is over at once (a wait of a nanosecond or so
// raced the ended context).
func TestBackOffEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 100000 {
		if err := BackOff(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("BackOff on an ended context, call %d: %v", i, err)
		}
	}
	if err := BackOff(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
}
