package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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

// TestDeadlockIsUnavailable: two units of work that record two invoices
// in opposite orders wait for each other; PostgreSQL fails one of them
// (40P01), which the store answers as ErrUnavailable, so that its caller
// tries again; the other commits.
func TestDeadlockIsUnavailable(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	st := postgres.New(newSchemaDB(t, pgtest.NewDatabase(t), 4))
	m := domain.MerchantID(domain.NewID())
	fact := func(invoice string) domain.InvoiceFact {
		return domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: invoice, AmountDue: 100, Currency: "usd", At: now(), AttemptCount: 1}
	}

	var held sync.WaitGroup
	held.Add(2)
	errs := make(chan error, 2)
	for _, order := range [][2]string{{"in_a", "in_b"}, {"in_b", "in_a"}} {
		go func() {
			errs <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				_, err := tx.Ledger().Record(ctx, m, fact(order[0]))
				held.Done() // each holds its first invoice's row
				if err != nil {
					return err
				}
				held.Wait() // and then waits for the other's
				_, err = tx.Ledger().Record(ctx, m, fact(order[1]))
				return err
			})
		}()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	is.Equal(len(failed), 1) // one is chosen to fail, the other commits
	err := failed[0]
	t.Logf("the deadlock's victim: %v", err)
	var pgErr *pgconn.PgError
	is.True(errors.As(err, &pgErr) && pgErr.Code == "40P01") // a deadlock
	is.True(errors.Is(err, domain.ErrUnavailable))           // answered as "try again"
}
