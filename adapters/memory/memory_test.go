package memory_test

import (
	"context"
	"errors"
	"fmt"
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

// The cases below are about what the ports promise but the contract suite
// does not check yet.

func TestPoliciesAndRecordsAreCopies(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	st := memory.New(nil)
	m := domain.MerchantID(domain.NewID())
	p := domain.DefaultDunningPolicy()
	is.NoErr(st.Policies().SetPolicy(ctx, m, p))
	p.RetryDelaysHours[0], p.DelaysByDeclineCode["insufficient_funds"][0], p.HardDeclineCodes[0] = 1, 1, "x"
	p.DelaysByDeclineCode["new_code"], p.Emails.ReminderHours[0] = []int{1}, 1
	got, err := st.Policies().Policy(ctx, m)
	is.NoErr(err)
	is.Equal(got, domain.DefaultDunningPolicy()) // the caller's changes after SetPolicy change nothing stored
	got.RetryDelaysHours[0], got.DelaysByDeclineCode["insufficient_funds"][0] = 2, 2
	again, err := st.Policies().Policy(ctx, m)
	is.NoErr(err)
	is.Equal(again, domain.DefaultDunningPolicy()) // nor do changes to what Policy returned

	retryAt := time.Now()
	rec, err := st.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_1", At: time.Now(), AttemptCount: 1, StripeRetryAt: &retryAt})
	is.NoErr(err)
	*rec.StripeRetryAt = time.Time{}
	retryAt = time.Time{}
	stored, err := st.Ledger().Invoice(ctx, m, "in_1")
	is.NoErr(err)
	is.True(!stored.StripeRetryAt.IsZero()) // neither the fact's pointer nor the answer's is the store's
}

func TestRolledBackDeliveryAttemptLeavesNoTrace(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	st := memory.New(nil)
	m := domain.MerchantID(domain.NewID())
	e, err := domain.NewWebhookEndpoint(m, "https://hooks.example/a", []string{"*"}, time.Now())
	is.NoErr(err)
	_, err = st.Endpoints().CreateEndpoint(ctx, m, e)
	is.NoErr(err)
	payload := []byte(`{"type":"task.failed"}`)
	_, err = st.Outbox().Enqueue(ctx, m, domain.OutboundMessage{Type: domain.OutboundTaskFailed, Payload: payload, At: time.Now()})
	is.NoErr(err)
	e.Events[0], e.Secret[0], payload[0] = "x", e.Secret[0]+1, 'x'

	err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		d, err := tx.Outbox().ClaimDeliveries(ctx, time.Now(), time.Minute, 10)
		if err != nil || len(d) != 1 {
			return fmt.Errorf("claim in the unit of work: %v, %v", d, err)
		}
		if err := tx.Outbox().FinishDelivery(ctx, d[0].ID, 1, domain.DeliveryResult{Status: domain.DeliveryFailed, StatusCode: 410, At: time.Now(), DisableEndpoint: true}); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	is.Equal(err.Error(), "roll back")
	list, err := st.Endpoints().ListEndpoints(ctx, m)
	is.NoErr(err)
	is.Equal(list[0].Events, []string{"*"}) // the caller's changes after CreateEndpoint change nothing stored
	is.True(list[0].Secret[0] != e.Secret[0])
	is.True(list[0].DisabledAt.IsZero()) // the rolled-back 410 disabled nothing
	d, err := st.Outbox().ClaimDeliveries(ctx, time.Now(), time.Minute, 10)
	is.NoErr(err)
	is.Equal(len(d), 1)        // the delivery is due again
	is.Equal(d[0].Attempts, 1) // its rolled-back attempt forgotten
	is.Equal(string(d[0].Payload), `{"type":"task.failed"}`)
	is.Equal(d[0].Secret, list[0].Secret)

	is.NoErr(st.Endpoints().DeleteEndpoint(ctx, m, e.ID))
	err = st.Outbox().FinishDelivery(ctx, d[0].ID, 1, domain.DeliveryResult{Status: domain.DeliveryDelivered, At: time.Now()})
	is.True(errors.Is(err, domain.ErrConflict)) // a delivery deleted with its endpoint has no claim left
}
