package porttest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// waitGrace lets goroutines that were just started reach a blocking call.
// Nothing is asserted on it: the cases hold whether or not they got there.
const waitGrace = 50 * time.Millisecond

// hangLimit ends a case whose adapter would otherwise block forever.
const hangLimit = time.Minute

// RunUnitOfWorkContract checks InTx and the event lock: exactly once under
// concurrent duplicates, atomic commit and rollback, isolation of
// uncommitted work.
func RunUnitOfWorkContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("concurrent duplicates have exactly one winner", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		evt := newEventID()

		const n = 20
		type result struct {
			won bool
			err error
		}
		start := make(chan struct{})
		results := make(chan result, n)
		for range n {
			go func() {
				<-start
				var won bool
				err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
					ok, err := tx.Events().AttemptEventLock(ctx, evt)
					if err != nil || !ok {
						return err
					}
					won = true
					_, err = tx.Tasks().Schedule(ctx, m, []domain.Task{newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())})
					return err
				})
				results <- result{won, err}
			}()
		}
		close(start)
		wins := 0
		for range n {
			r := <-results
			is.NoErr(r.err) // no unit of work fails
			if r.won {
				wins++
			}
		}
		is.Equal(wins, 1)                                           // exactly one unit of work gets the lock
		is.Equal(len(listAll(t, st, m, "", domain.MaxPageSize)), 1) // exactly one task is stored

		won, err := lockOnce(ctx, st, evt, false)
		is.NoErr(err)
		is.True(!won) // a duplicate after the commit is turned away
	})

	t.Run("a rolled back holder hands the lock to exactly one waiter", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		evt, inv := newEventID(), newInvoiceID()

		holderTask := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, now())
		locked, release := make(chan struct{}), make(chan struct{})
		holderErr := make(chan error, 1)
		go func() {
			holderErr <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				ok, err := tx.Events().AttemptEventLock(ctx, evt)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("the first unit of work did not get the lock")
				}
				if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{holderTask}); err != nil {
					return err
				}
				if err := recordFailure(ctx, tx.Ledger(), m, inv, 111, "usd", now()); err != nil {
					return err
				}
				close(locked)
				<-release
				return errRollback
			})
		}()
		select {
		case <-locked:
		case err := <-holderErr:
			is.NoErr(err) // the holder took the lock
			is.Fail()     // the holder ended before rolling back
		}

		const n = 10
		type result struct {
			won  bool
			task domain.TaskID
			err  error
		}
		results := make(chan result, n)
		for range n {
			task := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, now())
			go func() {
				var won bool
				err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
					ok, err := tx.Events().AttemptEventLock(ctx, evt)
					if err != nil || !ok {
						return err
					}
					won = true
					if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{task}); err != nil {
						return err
					}
					return recordFailure(ctx, tx.Ledger(), m, inv, 222, "usd", now())
				})
				results <- result{won, task.ID, err}
			}()
		}
		time.Sleep(waitGrace)
		close(release)
		is.True(errors.Is(<-holderErr, errRollback)) // InTx returns fn's error

		var winner domain.TaskID
		wins := 0
		for range n {
			r := <-results
			is.NoErr(r.err) // no waiter fails
			if r.won {
				wins++
				winner = r.task
			}
		}
		is.Equal(wins, 1) // exactly one waiter takes over the lock

		_, err := st.Tasks().Get(ctx, m, holderTask.ID)
		is.True(errors.Is(err, domain.ErrNotFound))                       // the holder's task is gone
		is.Equal(ids(listAll(t, st, m, "", 50)), []domain.TaskID{winner}) // only the winning waiter's task is kept
		rec, err := st.Ledger().Recovery(ctx, m)
		is.NoErr(err)
		is.Equal(rec["usd"].FailedAmount, int64(222)) // only the winning waiter's failure counts
	})

	t.Run("a lock rolled back can be taken again", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		evt := newEventID()

		won, err := lockOnce(ctx, st, evt, true)
		is.NoErr(err)
		is.True(won) // the first unit of work takes the lock
		won, err = lockOnce(ctx, st, evt, false)
		is.NoErr(err)
		is.True(won) // the lock was rolled back with its unit of work
		won, err = lockOnce(ctx, st, evt, false)
		is.NoErr(err)
		is.True(!won) // once committed, it stays taken
	})

	t.Run("a unit of work sees its own lock as taken", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		evt := newEventID()
		var first, second bool
		err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			var err error
			if first, err = tx.Events().AttemptEventLock(ctx, evt); err != nil {
				return err
			}
			second, err = tx.Events().AttemptEventLock(ctx, evt)
			return err
		})
		is.NoErr(err)
		is.True(first)   // the first attempt takes the lock
		is.True(!second) // the event is already processed by this very unit of work
	})

	t.Run("a waiter whose context ends gives up with its error", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		evt := newEventID()

		locked, release := make(chan struct{}), make(chan struct{})
		holderErr := make(chan error, 1)
		go func() {
			holderErr <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				ok, err := tx.Events().AttemptEventLock(ctx, evt)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("the first unit of work did not get the lock")
				}
				close(locked)
				<-release
				return nil
			})
		}()
		select {
		case <-locked:
		case err := <-holderErr:
			is.NoErr(err) // the holder took the lock
			is.Fail()     // the holder ended before its waiter was tested
		}

		waitCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		waiterErr := make(chan error, 1)
		go func() {
			waiterErr <- st.InTx(waitCtx, func(ctx context.Context, tx ports.Tx) error {
				_, err := tx.Events().AttemptEventLock(ctx, evt)
				return err
			})
		}()
		time.Sleep(waitGrace)
		cancel()
		select {
		case err := <-waiterErr:
			is.True(errors.Is(err, context.Canceled)) // the wait ends with ctx's error
		case <-time.After(hangLimit):
			is.Fail() // the waiter ignored its context
		}
		close(release)
		is.NoErr(<-holderErr) // the holder commits

		won, err := lockOnce(ctx, st, evt, false)
		is.NoErr(err)
		is.True(!won) // the holder's lock stands
	})

	for _, how := range []string{"returns an error", "panics"} {
		t.Run("a unit of work that "+how+" keeps nothing", func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := t.Context()
			st := newStorage(t)
			m := newMerchant(t, st)
			evt, inv, failedInv := newEventID(), newInvoiceID(), newInvoiceID()
			kept := canon(schedule(t, st, m, newTask(m, domain.TypeRetryPayment, inv, 1, now()))[0])
			added := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())

			var sawOwn bool
			panicked, err := runCatching(func() error {
				return st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
					if ok, err := tx.Events().AttemptEventLock(ctx, evt); err != nil || !ok {
						return fmt.Errorf("lock: %t, %w", ok, err)
					}
					if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{added}); err != nil {
						return err
					}
					got, err := tx.Tasks().Get(ctx, m, added.ID)
					sawOwn = err == nil && got.ID == added.ID
					cancelled, err := tx.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: inv}, now())
					if err != nil || len(cancelled) != 1 {
						return fmt.Errorf("cancel: %v, %w", cancelled, err)
					}
					if err := recordFailure(ctx, tx.Ledger(), m, failedInv, 500, "usd", now()); err != nil {
						return err
					}
					if err := recordPaid(ctx, tx.Ledger(), m, failedInv, 500, "usd", now()); err != nil {
						return err
					}
					if how == "panics" {
						panic(errRollback)
					}
					return errRollback
				})
			})
			if how == "panics" {
				is.True(panicked != nil || err != nil) // a panic does not pass for success
			} else {
				is.True(errors.Is(err, errRollback)) // InTx returns fn's error
			}
			is.True(sawOwn) // a unit of work reads its own writes

			_, err = st.Tasks().Get(ctx, m, added.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // the scheduled task is gone
			is.Equal(mustGet(t, st, m, kept.ID), kept)  // the cancelled task is pending as before
			rec, err := st.Ledger().Recovery(ctx, m)
			is.NoErr(err)
			is.Equal(rec["usd"], domain.CurrencyRecovery{}) // the ledger is untouched
			won, err := lockOnce(ctx, st, evt, false)
			is.NoErr(err)
			is.True(won) // the event lock went with the rest
		})
	}

	t.Run("uncommitted work is invisible to others", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		task := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())

		written, release := make(chan struct{}), make(chan struct{})
		var committing atomic.Bool
		holderErr := make(chan error, 1)
		go func() {
			holderErr <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{task}); err != nil {
					return err
				}
				close(written)
				<-release
				committing.Store(true)
				return nil
			})
		}()
		select {
		case <-written:
		case err := <-holderErr:
			is.NoErr(err) // the holder scheduled its task
			is.Fail()     // the holder ended too early
		}

		type read struct {
			err       error
			committed bool
		}
		reads := make(chan read, 1)
		go func() {
			_, err := st.Tasks().Get(ctx, m, task.ID)
			reads <- read{err, committing.Load()}
		}()
		// The reader may answer at once (not found) or wait for the
		// outcome (then found); it must never see the task uncommitted.
		var r read
		answered := false
		select {
		case r = <-reads:
			answered = true
		case <-time.After(waitGrace):
		}
		close(release)
		is.NoErr(<-holderErr) // the holder commits
		if !answered {
			r = <-reads
		}
		// Found only once the holder was committing, else not found. How
		// long the read took does not tell whether it waited: on a loaded
		// machine a read that waited for nothing may outlast any grace.
		is.True((r.err == nil && r.committed) || errors.Is(r.err, domain.ErrNotFound)) // no uncommitted task is visible
		is.Equal(mustGet(t, st, m, task.ID).ID, task.ID)                               // committed work is visible
	})
}

// runCatching calls fn and reports its error or what it panicked with.
func runCatching(fn func() error) (panicked any, err error) {
	defer func() { panicked = recover() }()
	return nil, fn()
}
