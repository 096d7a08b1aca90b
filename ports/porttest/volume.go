package porttest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunVolumeContract covers what the other suites' small cases do not reach:
// a unit of work long enough to change many rows before it rolls back, one
// Schedule call whose tasks meet under the "at most one" rules, the tasks of
// an invoice or a subscription after deletes, a merchant with hundreds of
// tasks, and a claim across many merchants.
func RunVolumeContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("a long unit of work rolls back whole", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		at := now().Add(-time.Minute)
		kept := schedule(t, st, m,
			taskAt(m, domain.TypeRetryPayment, "in_kept", "sub_1", 1, at),
			taskAt(m, domain.TypeNotifyChargeFailed, "", "sub_1", 0, at))
		is.NoErr(recordFailure(ctx, st.Ledger(), m, "in_kept", 100, "usd", at))
		before := listAll(t, st, m, "", domain.MaxPageSize)

		err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			var batch []domain.Task
			for i := range 40 {
				batch = append(batch, taskAt(m, domain.TypeNotifyPaymentFailed, "in_new", "sub_1", i+1, at.Add(time.Duration(i)*time.Second)))
			}
			if _, err := tx.Tasks().Schedule(ctx, m, batch); err != nil {
				return err
			}
			// A newer retry replaces the kept one in place; then everything
			// of the subscription is cancelled and one kept task deleted.
			newer := taskAt(m, domain.TypeRetryPayment, "in_kept", "sub_1", 2, at.Add(time.Hour))
			if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{newer}); err != nil {
				return err
			}
			if _, err := tx.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at); err != nil {
				return err
			}
			if err := tx.Tasks().Delete(ctx, m, kept[1].ID); err != nil {
				return err
			}
			if err := recordPaid(ctx, tx.Ledger(), m, "in_kept", 100, "usd", at); err != nil {
				return err
			}
			return errRollback
		})
		is.True(errors.Is(err, errRollback)) // the unit of work's error comes back

		is.Equal(listAll(t, st, m, "", domain.MaxPageSize), before) // every task is as it was, in the same order
		counts, err := st.Tasks().CountByStatus(ctx, m)
		is.NoErr(err)
		is.Equal(counts[domain.StatusPending], 2)   // the counts too
		is.Equal(counts[domain.StatusCancelled], 0) // nothing stays cancelled
		sums, err := st.Ledger().Recovery(ctx, m)
		is.NoErr(err)
		is.Equal(sums, map[string]domain.CurrencyRecovery{"usd": {FailedAmount: 100}}) // and the ledger
		n, _, err := st.Queue().Backlog(ctx, time.Now())
		is.NoErr(err)
		is.Equal(n, 2) // and the due queue

		// The rolled back notifications are gone, so they can be stored
		// now, once each.
		stored := schedule(t, st, m,
			taskAt(m, domain.TypeNotifyPaymentFailed, "in_new", "", 1, at),
			taskAt(m, domain.TypeNotifyPaymentFailed, "in_new", "", 1, at))
		is.Equal(len(stored), 1) // one notify_payment_failed per invoice attempt
		cancelled, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at)
		is.NoErr(err)
		slices.Sort(cancelled)
		want := []domain.TaskID{kept[0].ID, kept[1].ID}
		slices.Sort(want)
		is.Equal(cancelled, want) // the subscription holds exactly its tasks
	})

	t.Run("tasks of one call that meet under a rule come out as one by one", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		m := newMerchant(t, st)
		const inv = "in_meeting"
		at := now()
		notify1 := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, at)
		notify1again := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, at)
		retry1 := newTask(m, domain.TypeRetryPayment, inv, 1, at)
		retry2 := newTask(m, domain.TypeRetryPayment, inv, 2, at)
		retry2.RunAt = retry1.RunAt.Add(time.Hour)
		notify2 := newTask(m, domain.TypeNotifyPaymentFailed, inv, 2, at)

		stored := schedule(t, st, m, notify1, notify1again, retry1, retry2, notify2)
		is.Equal(ids(stored), []domain.TaskID{notify1.ID, retry1.ID, retry1.ID, notify2.ID}) // the second notify of attempt 1 is not stored; the retry of attempt 2 updates the first
		is.Equal(stored[1].InvoiceAttempt, 1)                                                // the first retry as inserted
		is.Equal(stored[2].InvoiceAttempt, 2)                                                // then as the later attempt left it
		is.True(stored[2].RunAt.Equal(retry2.RunAt))                                         // with the later schedule
		is.Equal(len(listAll(t, st, m, "", 10)), 3)                                          // two notifies and one retry
	})

	t.Run("cancelling after deletes reaches exactly the tasks left", func(t *testing.T) {
		t.Parallel()
		at := now()
		// Deleting the newest, the oldest, and tasks in between.
		for _, del := range [][]int{{3}, {0}, {1, 2}, {3, 2}, {0, 3}} {
			is := is.New(t)
			ctx := t.Context()
			st := newStorage(t)
			m := newMerchant(t, st)
			var batch []domain.Task
			for i := range 4 {
				batch = append(batch, taskAt(m, domain.TypeNotifyChargeFailed, "in_1", "sub_1", 0, at.Add(time.Duration(i)*time.Second)))
			}
			stored := schedule(t, st, m, batch...)
			left := map[domain.TaskID]bool{}
			for _, task := range stored {
				left[task.ID] = true
			}
			for _, i := range del {
				is.NoErr(st.Tasks().Delete(ctx, m, stored[i].ID))
				delete(left, stored[i].ID)
			}
			extra := schedule(t, st, m, taskAt(m, domain.TypeNotifyChargeFailed, "in_2", "sub_2", 0, at))
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
			is.Equal(got, []domain.TaskID{extra[0].ID}) // the new task is the only one of its subscription
		}
	})

	t.Run("a merchant with hundreds of tasks", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		at := now()
		const n = 300
		var batch []domain.Task
		for i := range n {
			batch = append(batch, taskAt(m, domain.TypeNotifyChargeFailed, "", "sub_1", 0, at.Add(time.Duration(i)*time.Millisecond)))
		}
		stored := schedule(t, st, m, batch...)
		is.Equal(len(stored), n) // every task is stored
		for i, task := range stored {
			is.Equal(canon(mustGet(t, st, m, task.ID)), canon(stored[i])) // and comes back whole
		}
		walked := listAll(t, st, m, "", 70)
		is.Equal(len(walked), n) // the pages hold every task once
		for i, task := range walked {
			is.Equal(task.ID, stored[n-1-i].ID) // newest first
		}
		cancelled, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: "sub_1"}, at)
		is.NoErr(err)
		is.Equal(len(cancelled), n) // the subscription reaches every task
	})

	t.Run("one claim takes due tasks of many merchants", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		at := now().Add(-time.Hour)
		want := map[domain.TaskID]bool{}
		for i := range 20 {
			m := newMerchant(t, st)
			var batch []domain.Task
			for j := range 3 {
				batch = append(batch, taskAt(m, domain.TypeNotifyChargeFailed, "", "", 0, at.Add(time.Duration(i*3+j)*time.Millisecond)))
			}
			for _, task := range schedule(t, st, m, batch...) {
				want[task.ID] = true
			}
		}
		claimed, err := st.Queue().ClaimDue(ctx, time.Now(), time.Minute, 100)
		is.NoErr(err)
		is.Equal(len(claimed), len(want)) // one claim takes the due tasks of all 20 merchants
		for _, task := range claimed {
			is.True(want[task.ID])                      // each claimed task is one of those stored
			is.Equal(task.Status, domain.StatusRunning) // now running
			delete(want, task.ID)                       // and claimed once
		}
		again, err := st.Queue().ClaimDue(ctx, time.Now(), time.Minute, 100)
		is.NoErr(err)
		is.Equal(len(again), 0) // nothing is left to claim while the leases hold
	})
}

// taskAt is newTask of the subscription sub (none if empty), due at once.
func taskAt(m domain.MerchantID, typ domain.TaskType, invoice, sub string, attempt int, at time.Time) domain.Task {
	t := newTask(m, typ, invoice, attempt, at)
	t.StripeSubscriptionID, t.RunAt = sub, t.CreatedAt
	return t
}
