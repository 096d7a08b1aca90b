package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
)

// TestLockWaitPastDeadline: a duplicate that waits on an in-flight holder
// past its deadline gives up with ErrUnavailable (wrapping the deadline),
// and takes nothing with it; the holder's commit stands.
func TestLockWaitPastDeadline(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	st := postgres.New(newSchemaDB(t, pgtest.NewDatabase(t), 4))
	const evt = "evt_deadline"

	locked := make(chan bool, 1)
	release := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			ok, err := tx.Events().AttemptEventLock(ctx, evt)
			locked <- ok
			<-release
			return err
		})
	}()
	is.True(<-locked) // the holder takes the lock

	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	started := time.Now()
	err := st.InTx(waitCtx, func(ctx context.Context, tx ports.Tx) error {
		_, err := tx.Events().AttemptEventLock(ctx, evt)
		return err
	})
	t.Logf("waited %v: %v", time.Since(started), err)
	is.True(errors.Is(err, context.DeadlineExceeded)) // the waiter gives up at its deadline
	is.True(errors.Is(err, domain.ErrUnavailable))    // which the caller answers as unavailable

	close(release)
	is.NoErr(<-holder) // the holder commits
	var won bool
	is.NoErr(st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		var err error
		won, err = tx.Events().AttemptEventLock(ctx, evt)
		return err
	}))
	is.True(!won) // the committed lock holds
}
