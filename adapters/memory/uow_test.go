package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// These cases reach the paths the contract suite's small units of work do
// not: undo logs long enough to be indexed, units of work holding many
// shards, and a merchant whose task chains grow and shrink.

func pendingTask(m domain.MerchantID, typ domain.TaskType, invoice, sub string, attempt int, at time.Time) domain.Task {
	return domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: typ, Status: domain.StatusPending,
		StripeEventID: "evt_" + domain.NewID(), StripeInvoiceID: invoice, StripeSubscriptionID: sub,
		InvoiceAttempt: attempt, RunAt: at, CreatedAt: at, UpdatedAt: at,
	}
}

func TestLongUnitOfWorkRollsBackWhole(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	st := memory.New(ports.SystemClock{})
	m := domain.MerchantID(domain.NewID())
	at := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Minute)
	kept, err := st.Tasks().Schedule(ctx, m, []domain.Task{
		pendingTask(m, domain.TypeRetryPayment, "in_kept", "sub_1", 1, at),
		pendingTask(m, domain.TypeNotifyChargeFailed, "", "sub_1", 0, at),
	})
	is.NoErr(err)
	is.NoErr(st.Ledger().RecordFailure(ctx, m, domain.InvoiceAmount{InvoiceID: "in_kept", Amount: 100, Currency: "usd"}, at))
	before, err := st.Tasks().List(ctx, m, domain.TaskFilter{Limit: domain.MaxPageSize})
	is.NoErr(err)

	boom := errors.New("boom")
	err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		var batch []domain.Task
		for i := range 40 {
			batch = append(batch, pendingTask(m, domain.TypeNotifyPaymentFailed, "in_new", "sub_1", i+1, at.Add(time.Duration(i)*time.Second)))
		}
		if _, err := tx.Tasks().Schedule(ctx, m, batch); err != nil {
			return err
		}
		// A newer retry replaces the kept one in place; then everything of
		// the subscription is cancelled and one kept task deleted.
		newer := pendingTask(m, domain.TypeRetryPayment, "in_kept", "sub_1", 2, at.Add(time.Hour))
		if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{newer}); err != nil {
			return err
		}
		if _, err := tx.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at); err != nil {
			return err
		}
		if err := tx.Tasks().Delete(ctx, m, kept[1].ID); err != nil {
			return err
		}
		if err := tx.Ledger().RecordPaid(ctx, m, domain.InvoiceAmount{InvoiceID: "in_kept", Amount: 100, Currency: "usd"}, at); err != nil {
			return err
		}
		return boom
	})
	is.True(errors.Is(err, boom)) // the unit of work's error comes back

	after, err := st.Tasks().List(ctx, m, domain.TaskFilter{Limit: domain.MaxPageSize})
	is.NoErr(err)
	is.Equal(after, before) // every task is as it was, in the same order
	counts, err := st.Tasks().CountByStatus(ctx, m)
	is.NoErr(err)
	is.Equal(counts, map[domain.TaskStatus]int{domain.StatusPending: 2}) // the counts too
	sums, err := st.Ledger().Recovery(ctx, m)
	is.NoErr(err)
	is.Equal(sums, map[string]domain.CurrencyRecovery{"usd": {FailedAmount: 100}}) // and the ledger
	n, _, err := st.Queue().Backlog(ctx, time.Now())
	is.NoErr(err)
	is.Equal(n, 2) // and the due queue

	// The rolled back notifications are gone, so they can be stored now,
	// once each.
	again := []domain.Task{
		pendingTask(m, domain.TypeNotifyPaymentFailed, "in_new", "", 1, at),
		pendingTask(m, domain.TypeNotifyPaymentFailed, "in_new", "", 1, at),
	}
	stored, err := st.Tasks().Schedule(ctx, m, again)
	is.NoErr(err)
	is.Equal(len(stored), 1) // one notify_payment_failed per invoice attempt
	cancelled, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at)
	is.NoErr(err)
	want := []domain.TaskID{kept[0].ID, kept[1].ID}
	slices.Sort(want)
	is.Equal(cancelled, want) // the subscription's chain holds exactly its tasks, in id order
}

func TestClaimAcrossManyMerchants(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	st := memory.New(ports.SystemClock{})
	at := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	want := map[domain.TaskID]bool{}
	for i := range 20 {
		m := domain.MerchantID(domain.NewID())
		var batch []domain.Task
		for j := range 3 {
			batch = append(batch, pendingTask(m, domain.TypeNotifyChargeFailed, "", "", 0, at.Add(time.Duration(i*3+j)*time.Millisecond)))
		}
		stored, err := st.Tasks().Schedule(ctx, m, batch)
		is.NoErr(err)
		for _, task := range stored {
			want[task.ID] = true
		}
	}
	claimed, err := st.Queue().ClaimDue(ctx, time.Now(), time.Minute, 100)
	is.NoErr(err)
	is.Equal(len(claimed), len(want)) // one claim takes the due tasks of all 20 merchants
	for i, task := range claimed {
		is.True(want[task.ID])                      // each claimed task is one of those stored
		is.Equal(task.Status, domain.StatusRunning) // now running
		delete(want, task.ID)                       // and claimed once
		if i > 0 {
			is.True(!task.RunAt.Before(claimed[i-1].RunAt)) // oldest first
		}
	}
	again, err := st.Queue().ClaimDue(ctx, time.Now(), time.Minute, 100)
	is.NoErr(err)
	is.Equal(len(again), 0) // nothing is left to claim while the leases hold
}

func TestCancelAfterDeletesInTheChain(t *testing.T) {
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Microsecond)
	// The chain is newest first: deleting index 3 takes its head, 0 its
	// tail, 1 and 2 its middle.
	for _, del := range [][]int{{3}, {0}, {1, 2}, {3, 2}, {0, 3}} {
		is := is.New(t)
		st := memory.New(ports.SystemClock{})
		m := domain.MerchantID(domain.NewID())
		var batch []domain.Task
		for i := range 4 {
			batch = append(batch, pendingTask(m, domain.TypeNotifyChargeFailed, "in_1", "sub_1", 0, at.Add(time.Duration(i)*time.Second)))
		}
		stored, err := st.Tasks().Schedule(ctx, m, batch)
		is.NoErr(err)
		left := map[domain.TaskID]bool{}
		for _, task := range stored {
			left[task.ID] = true
		}
		for _, i := range del {
			is.NoErr(st.Tasks().Delete(ctx, m, stored[i].ID))
			delete(left, stored[i].ID)
		}
		// A task put after the deletes reuses a freed slot.
		extra, err := st.Tasks().Schedule(ctx, m, []domain.Task{pendingTask(m, domain.TypeNotifyChargeFailed, "in_2", "sub_2", 0, at)})
		is.NoErr(err)
		for _, sel := range []domain.CancelSelector{{SubscriptionID: "sub_1"}, {InvoiceID: "in_1"}} {
			got, err := st.Tasks().CancelPending(ctx, m, sel, at)
			is.NoErr(err)
			is.Equal(len(got), len(left)) // exactly the tasks left are cancelled
			for _, id := range got {
				is.True(left[id]) // and only those
			}
			left = map[domain.TaskID]bool{} // the second selector finds them cancelled already
		}
		got, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_2"}, at)
		is.NoErr(err)
		is.Equal(got, []domain.TaskID{extra[0].ID}) // the new task is in its own chain only
	}
}

func TestManyTasksOfOneMerchant(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	st := memory.New(ports.SystemClock{})
	m := domain.MerchantID(domain.NewID())
	at := time.Now().UTC().Truncate(time.Microsecond)
	const n = 300 // more than two chunks of slots
	var batch []domain.Task
	for i := range n {
		batch = append(batch, pendingTask(m, domain.TypeNotifyChargeFailed, "", "sub_1", 0, at.Add(time.Duration(i)*time.Millisecond)))
	}
	stored, err := st.Tasks().Schedule(ctx, m, batch)
	is.NoErr(err)
	is.Equal(len(stored), n) // every task is stored
	for i, task := range stored {
		got, err := st.Tasks().Get(ctx, m, task.ID)
		is.NoErr(err)
		is.Equal(got, stored[i]) // and comes back whole from its slot
	}
	var walked []domain.TaskID
	f := domain.TaskFilter{Limit: 70}
	for {
		page, err := st.Tasks().List(ctx, m, f)
		is.NoErr(err)
		for _, task := range page.Tasks {
			walked = append(walked, task.ID)
		}
		if page.Next == nil {
			break
		}
		f.After = page.Next
	}
	is.Equal(len(walked), n) // the pages hold every task once
	for i, id := range walked {
		is.Equal(id, stored[n-1-i].ID) // newest first
	}
	cancelled, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at)
	is.NoErr(err)
	is.Equal(len(cancelled), n) // the subscription's chain reaches every task
}
