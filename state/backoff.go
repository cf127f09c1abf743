package state

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxBackOff bounds one wait of BackOff.
const maxBackOff = 64 * time.Millisecond

// BackOff waits before the attempt-th retry (from 1) of a change that lost
// a check-and-set (ErrConflict): a random time up to min(1 ms << attempt,
// 64 ms), full jitter, so that writers racing for one layer stop colliding
// in lockstep and one of them cannot win every round. It returns ctx's
// error when ctx ends first.
func BackOff(ctx context.Context, attempt int) error {
	// A wait over at once would otherwise race an ended ctx in the select.
	if err := ctx.Err(); err != nil {
		return err
	}
	ceiling := min(time.Millisecond<<min(attempt, 16), maxBackOff)
	t := time.NewTimer(rand.N(ceiling) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
