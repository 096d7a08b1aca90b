package porttest

import (
	"runtime"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/ports"
)

// RunEventRetentionContract checks PruneEvents: only locks taken before the
// cutoff, at most batch at a time, and a pruned event can be locked again.
func RunEventRetentionContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("old locks are pruned in batches", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		lock := func(evt string) {
			won, err := lockOnce(ctx, st, evt, false)
			is.NoErr(err)
			is.True(won) // a new event's lock is taken
		}

		old := []string{newEventID(), newEventID(), newEventID()}
		for _, evt := range old {
			lock(evt)
		}
		// The cutoff is the next whole microsecond after the old locks;
		// the recent ones are taken only once the clock has passed it.
		cutoff := time.Now().UTC().Truncate(time.Microsecond).Add(time.Microsecond)
		for time.Now().Before(cutoff.Add(time.Microsecond)) {
			runtime.Gosched()
		}
		recent := []string{newEventID(), newEventID()}
		for _, evt := range recent {
			lock(evt)
		}

		n, err := st.PruneEvents(ctx, time.Now().Add(-time.Hour), 10)
		is.NoErr(err)
		is.Equal(n, 0) // no lock is that old
		for _, want := range []int{2, 1, 0} {
			n, err := st.PruneEvents(ctx, cutoff, 2)
			is.NoErr(err)
			is.Equal(n, want) // at most batch a call, only those before the cutoff
		}
		for _, evt := range old {
			won, err := lockOnce(ctx, st, evt, true)
			is.NoErr(err)
			is.True(won) // a pruned event can be locked again
		}
		for _, evt := range recent {
			won, err := lockOnce(ctx, st, evt, true)
			is.NoErr(err)
			is.True(!won) // a recent lock is kept
		}
	})
}
