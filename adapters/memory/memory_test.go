package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
	"github.com/recoupdev/recoup/ports/porttest"
)

func TestStorageContract(t *testing.T) {
	porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
		return memory.New(ports.SystemClock{})
	})
}

// notifyTask is a task no "at most one" rule matches.
func notifyTask(m domain.MerchantID) domain.Task {
	now := time.Now().UTC()
	return domain.Task{ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: domain.TypeNotifyChargeFailed,
		Status: domain.StatusPending, RunAt: now, CreatedAt: now, UpdatedAt: now}
}

func TestCallOutsideTheRunningUnitOfWorkFails(t *testing.T) {
	is := is.New(t)
	st := memory.New(nil)
	m := domain.MerchantID(domain.NewID())
	var outside [3]error
	done := make(chan error, 1)
	go func() {
		done <- st.InTx(t.Context(), func(ctx context.Context, tx ports.Tx) error {
			_, outside[0] = st.Tasks().Get(ctx, m, domain.TaskID(domain.NewID()))
			_, outside[1] = st.Queue().ClaimDue(ctx, time.Now(), time.Minute, 1)
			outside[2] = st.InTx(ctx, func(context.Context, ports.Tx) error { return nil })
			_, err := tx.Tasks().Schedule(ctx, m, []domain.Task{notifyTask(m)})
			return err
		})
	}()
	select {
	case err := <-done:
		is.NoErr(err) // the Tx itself works meanwhile
	case <-time.After(time.Minute):
		t.Fatal("a call outside the running unit of work waited for it")
	}
	for _, err := range outside {
		is.True(errors.Is(err, domain.ErrInvalid)) // a call outside the unit of work with its context, a nested one too
	}
	counts, err := st.Tasks().CountByStatus(t.Context(), m)
	is.NoErr(err)
	is.Equal(counts[domain.StatusPending], 1) // the unit of work committed
}

func TestContextOfAnEndedUnitOfWorkStillWorks(t *testing.T) {
	is := is.New(t)
	st := memory.New(nil)
	var kept context.Context
	is.NoErr(st.InTx(t.Context(), func(ctx context.Context, _ ports.Tx) error {
		kept = ctx
		return nil
	}))
	_, err := st.Tasks().CountByStatus(kept, domain.MerchantID(domain.NewID()))
	is.NoErr(err) // the marker names a unit of work that has ended
}

func TestTxAfterItsUnitOfWorkFails(t *testing.T) {
	is := is.New(t)
	st := memory.New(nil)
	m := domain.MerchantID(domain.NewID())
	var kept ports.Tx
	is.NoErr(st.InTx(t.Context(), func(_ context.Context, tx ports.Tx) error {
		kept = tx
		return nil
	}))
	_, err := kept.Tasks().Schedule(t.Context(), m, []domain.Task{notifyTask(m)})
	is.True(errors.Is(err, domain.ErrInvalid)) // the Tx of an ended unit of work
	_, err = kept.Events().AttemptEventLock(t.Context(), "evt_late")
	is.True(errors.Is(err, domain.ErrInvalid))
	_, err = kept.Ledger().Record(t.Context(), m, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_late", At: time.Now()})
	is.True(errors.Is(err, domain.ErrInvalid))
	is.True(errors.Is(kept.Policies().SetPolicy(t.Context(), m, domain.DefaultDunningPolicy()), domain.ErrInvalid))
	_, err = kept.Queue().ClaimDue(t.Context(), time.Now(), time.Minute, 1)
	is.True(errors.Is(err, domain.ErrInvalid))
	counts, err := st.Tasks().CountByStatus(t.Context(), m)
	is.NoErr(err)
	is.Equal(len(counts), 0) // and changes nothing
}

func TestTxSharedByGoroutines(t *testing.T) {
	is := is.New(t)
	st := memory.New(nil)
	m := domain.MerchantID(domain.NewID())
	const n = 20
	err := st.InTx(t.Context(), func(ctx context.Context, tx ports.Tx) error {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				_, err := tx.Tasks().Schedule(ctx, m, []domain.Task{notifyTask(m)})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return errors.New("roll back")
	})
	is.Equal(err.Error(), "roll back")
	counts, err := st.Tasks().CountByStatus(t.Context(), m)
	is.NoErr(err)
	is.Equal(len(counts), 0) // every goroutine's task was rolled back
}
