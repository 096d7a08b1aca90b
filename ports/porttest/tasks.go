package porttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunTaskRepositoryContract checks the tenant task repository: tenant
// scoping, the "at most one" scheduling rules (also under concurrency),
// keyset pagination, retry, delete, cancel and counts.
func RunTaskRepositoryContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("an end_dunning holds its invoice across cancel, undo and retry", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		invoice := "in_" + token()
		end := func() domain.Task { return newTask(m, domain.TypeEndDunning, invoice, 0, now().Add(time.Hour)) }
		first := end()
		_, err := st.Tasks().Schedule(ctx, m, []domain.Task{first})
		is.NoErr(err)
		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: invoice, Reason: domain.ReasonPaid}, now()); err != nil {
				return err
			}
			if stored, err := tx.Tasks().Schedule(ctx, m, []domain.Task{end()}); err != nil || len(stored) != 1 || stored[0].ID == first.ID {
				return fmt.Errorf("a cancelled end_dunning frees its invoice: %v, %v", stored, err)
			}
			return errors.New("roll back")
		})
		is.Equal(err.Error(), "roll back")
		stored, err := st.Tasks().Schedule(ctx, m, []domain.Task{end()})
		is.NoErr(err)
		is.Equal(len(stored), 1)
		is.Equal(stored[0].ID, first.ID) // rolled back, the first is pending and holds its invoice again

		_, err = st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: invoice}, now())
		is.NoErr(err)
		_, err = st.Tasks().Schedule(ctx, m, []domain.Task{end()})
		is.NoErr(err)
		_, err = st.Tasks().Retry(ctx, m, first.ID, now())
		is.True(errors.Is(err, domain.ErrConflict)) // a cancelled end_dunning cannot come back beside another

		noInvoice := func() domain.Task { return newTask(m, domain.TypeNotifyPaymentFailed, "", 1, now()) }
		stored, err = st.Tasks().Schedule(ctx, m, []domain.Task{noInvoice(), noInvoice()})
		is.NoErr(err)
		is.Equal(len(stored), 1) // the rules hold for tasks of no invoice too, "" being a key like any other
	})

	t.Run("stored tasks come back whole", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		m := newMerchant(t, st)
		var in []domain.Task
		for _, typ := range domain.TaskTypes {
			task := newTask(m, typ, newInvoiceID(), 2, now())
			task.Attempts, task.LastError, task.Reason = 3, "earlier failure", domain.ReasonHardDecline
			in = append(in, task)
		}
		stored := schedule(t, st, m, in...)
		is.Equal(len(stored), len(in)) // every task is stored
		for i, want := range in {
			is.Equal(canon(stored[i]), canon(want))           // Schedule returns what it stored
			is.Equal(mustGet(t, st, m, want.ID), canon(want)) // Get returns every field
		}
	})

	t.Run("a task id is stored in its canonical spelling", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		m := newMerchant(t, st)
		task := unruledTask(m)
		lower := task.ID
		task.ID = domain.TaskID(strings.ToUpper(string(lower)))
		stored := schedule(t, st, m, task)
		is.Equal(stored[0].ID, lower)                  // as PostgreSQL's uuid column spells it
		is.Equal(mustGet(t, st, m, lower).ID, lower)   // and found by that spelling
		is.Equal(mustGet(t, st, m, task.ID).ID, lower) // and by the other
		exists, err := st.Tasks().Exists(t.Context(), task.ID)
		is.NoErr(err)
		is.True(exists) // whose task exists
		task.ID = lower
		_, err = st.Tasks().Schedule(t.Context(), m, []domain.Task{task})
		is.True(errors.Is(err, domain.ErrConflict)) // one task, whatever the spelling

		other := newMerchant(t, st)
		stored = schedule(t, st, other, unruledTask(other))
		for _, m := range []domain.MerchantID{other, m} {
			again := unruledTask(m)
			again.ID = domain.TaskID(strings.ToUpper(string(stored[0].ID)))
			_, err = st.Tasks().Schedule(t.Context(), m, []domain.Task{again})
			is.True(errors.Is(err, domain.ErrConflict)) // a stored id in capitals is the same id
		}
		is.Equal(mustGet(t, st, other, stored[0].ID), stored[0]) // and the stored task is as it was

		is.NoErr(st.Tasks().Delete(t.Context(), other, domain.TaskID(strings.ToUpper(string(stored[0].ID)))))
		_, err = st.Tasks().Get(t.Context(), other, stored[0].ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // deleted by either spelling
	})

	t.Run("a task id is used once, across merchants and within a unit of work", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		stored := unruledTask(a)
		schedule(t, st, a, stored)

		again := unruledTask(b)
		again.ID = stored.ID
		_, err := st.Tasks().Schedule(ctx, b, []domain.Task{again})
		is.True(errors.Is(err, domain.ErrConflict)) // another merchant's task has the id

		twice := unruledTask(b)
		_, err = st.Tasks().Schedule(ctx, b, []domain.Task{twice, twice})
		is.True(errors.Is(err, domain.ErrConflict)) // one batch uses the id twice

		fresh := unruledTask(b)
		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().Schedule(ctx, b, []domain.Task{fresh}); err != nil {
				return err
			}
			_, err := tx.Tasks().Schedule(ctx, b, []domain.Task{fresh})
			return err
		})
		is.True(errors.Is(err, domain.ErrConflict)) // a unit of work stores the id twice

		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().Schedule(ctx, b, []domain.Task{fresh}); err != nil {
				return err
			}
			forA := fresh
			forA.MerchantID = a
			_, err := tx.Tasks().Schedule(ctx, a, []domain.Task{forA})
			return err
		})
		is.True(errors.Is(err, domain.ErrConflict)) // a unit of work stores the id for two merchants

		page, err := st.Tasks().List(ctx, b, domain.TaskFilter{Limit: 10})
		is.NoErr(err)
		is.Equal(len(page.Tasks), 0)                   // none of it was kept
		is.Equal(mustGet(t, st, a, stored.ID), stored) // and the stored task is as it was
	})

	t.Run("an empty merchant is invalid", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		repo := newStorage(t).Tasks()
		id := domain.TaskID(domain.NewID())
		_, err := repo.Schedule(ctx, "", []domain.Task{newTask("", domain.TypeNotifyChargeFailed, "", 0, now())})
		is.True(errors.Is(err, domain.ErrInvalid)) // Schedule
		_, err = repo.CancelPending(ctx, "", domain.CancelSelector{InvoiceID: newInvoiceID()}, now())
		is.True(errors.Is(err, domain.ErrInvalid)) // CancelPending
		_, err = repo.List(ctx, "", domain.TaskFilter{Limit: 10})
		is.True(errors.Is(err, domain.ErrInvalid)) // List
		_, err = repo.Get(ctx, "", id)
		is.True(errors.Is(err, domain.ErrInvalid)) // Get
		_, err = repo.Retry(ctx, "", id, now())
		is.True(errors.Is(err, domain.ErrInvalid)) // Retry
		err = repo.Delete(ctx, "", id)
		is.True(errors.Is(err, domain.ErrInvalid)) // Delete
		_, err = repo.CountByStatus(ctx, "")
		is.True(errors.Is(err, domain.ErrInvalid)) // CountByStatus
	})

	t.Run("malformed requests are invalid and change nothing", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		pending := taskIn(t, st, a, domain.StatusPending)

		ofB := newTask(b, domain.TypeNotifyChargeFailed, "", 0, now())
		_, err := st.Tasks().Schedule(ctx, a, []domain.Task{ofB})
		is.True(errors.Is(err, domain.ErrInvalid)) // a task of another merchant
		exists, err := st.Tasks().Exists(ctx, ofB.ID)
		is.NoErr(err)
		is.True(!exists) // is not stored

		for _, sel := range []domain.CancelSelector{{}, {InvoiceID: pending.StripeInvoiceID, SubscriptionID: pending.StripeSubscriptionID}} {
			_, err = st.Tasks().CancelPending(ctx, a, sel, now())
			is.True(errors.Is(err, domain.ErrInvalid)) // a selector names exactly one of invoice and subscription
		}
		_, err = st.Tasks().List(ctx, a, domain.TaskFilter{Status: "later", Limit: 10})
		is.True(errors.Is(err, domain.ErrInvalid)) // an unknown status
		_, err = st.Queue().ClaimDue(ctx, claimBase, 0, 10)
		is.True(errors.Is(err, domain.ErrInvalid)) // a claim needs a lease
		_, err = st.Tasks().Get(ctx, a, "not-a-task-id")
		is.True(errors.Is(err, domain.ErrNotFound))      // a malformed id names no task
		is.Equal(mustGet(t, st, a, pending.ID), pending) // nothing changed
	})

	t.Run("cancel by type records the reason", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		inv := newInvoiceID()
		retry := newTask(m, domain.TypeRetryPayment, inv, 1, now())
		end := newTask(m, domain.TypeEndDunning, inv, 1, now())
		notify := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, now())
		schedule(t, st, m, retry, end, notify)
		at := now().Add(time.Minute)
		got, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: inv,
			Types: []domain.TaskType{domain.TypeRetryPayment, domain.TypeEndDunning}, Reason: domain.ReasonHardDecline}, at)
		is.NoErr(err)
		want := []domain.TaskID{retry.ID, end.ID}
		slices.Sort(want)
		is.Equal(got, want) // only the types named
		for _, id := range want {
			task := mustGet(t, st, m, id)
			is.Equal(task.Status, domain.StatusCancelled)
			is.Equal(task.Reason, domain.ReasonHardDecline) // with the reason
			is.True(task.UpdatedAt.Equal(at))
		}
		is.Equal(mustGet(t, st, m, notify.ID).Status, domain.StatusPending) // the rest stays

		again, err := st.Tasks().Retry(ctx, m, retry.ID, now())
		is.NoErr(err)
		is.Equal(again.Reason, "") // a task sent back to pending has not ended
		is.Equal(mustGet(t, st, m, retry.ID).Reason, "")
	})

	t.Run("retry never makes a second pending retry_payment", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		inv := newInvoiceID()
		old := newTask(m, domain.TypeRetryPayment, inv, 1, now())
		schedule(t, st, m, old)
		_, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: inv}, now())
		is.NoErr(err)
		newer := newTask(m, domain.TypeRetryPayment, inv, 2, now())
		is.Equal(ids(schedule(t, st, m, newer)), []domain.TaskID{newer.ID})
		oldBefore, newerBefore := mustGet(t, st, m, old.ID), mustGet(t, st, m, newer.ID)

		_, err = st.Tasks().Retry(ctx, m, old.ID, now())
		is.True(errors.Is(err, domain.ErrConflict))        // the invoice has a pending retry already
		is.Equal(mustGet(t, st, m, old.ID), oldBefore)     // the cancelled one stays cancelled
		is.Equal(mustGet(t, st, m, newer.ID), newerBefore) // the pending one is untouched
	})

	t.Run("a merchant never reaches another merchant's tasks", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		pending := taskIn(t, st, a, domain.StatusPending)
		cancelled := taskIn(t, st, a, domain.StatusCancelled)
		running := taskIn(t, st, a, domain.StatusRunning)
		repo := st.Tasks()

		for _, task := range []domain.Task{pending, cancelled, running} {
			_, err := repo.Get(ctx, b, task.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // Get by another merchant
			_, err = repo.Retry(ctx, b, task.ID, now())
			is.True(errors.Is(err, domain.ErrNotFound)) // Retry by another merchant
			err = repo.Delete(ctx, b, task.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // Delete by another merchant
			ids, err := repo.CancelPending(ctx, b, domain.CancelSelector{InvoiceID: task.StripeInvoiceID}, now())
			is.NoErr(err)
			is.Equal(len(ids), 0) // CancelPending by invoice touches only the merchant's tasks
			ids, err = repo.CancelPending(ctx, b, domain.CancelSelector{SubscriptionID: task.StripeSubscriptionID}, now())
			is.NoErr(err)
			is.Equal(len(ids), 0) // CancelPending by subscription touches only the merchant's tasks
			exists, err := repo.Exists(ctx, task.ID)
			is.NoErr(err)
			is.True(exists) // Exists sees every merchant's tasks
		}
		err := st.Queue().Finish(ctx, b, running.ID, running.Attempts, domain.TaskResult{Status: domain.StatusSucceeded, At: now()})
		is.True(err != nil) // Finish names the merchant too

		for _, task := range []domain.Task{pending, cancelled, running} {
			is.Equal(mustGet(t, st, a, task.ID), task) // the owner's task is unchanged
		}
		page, err := repo.List(ctx, b, domain.TaskFilter{Limit: domain.MaxPageSize})
		is.NoErr(err)
		is.Equal(len(page.Tasks), 0) // List shows only the merchant's tasks
		is.True(page.Next == nil)    // and has nothing after
		for _, s := range domain.TaskStatuses {
			page, err := repo.List(ctx, b, domain.TaskFilter{Status: s, Limit: 10})
			is.NoErr(err)
			is.Equal(len(page.Tasks), 0) // List by status shows only the merchant's tasks
		}
		counts, err := repo.CountByStatus(ctx, b)
		is.NoErr(err)
		for _, s := range domain.TaskStatuses {
			is.Equal(counts[s], 0) // the other merchant has no tasks
		}
		counts, err = repo.CountByStatus(ctx, a)
		is.NoErr(err)
		is.Equal(counts[domain.StatusPending], 1)   // the owner's pending task
		is.Equal(counts[domain.StatusCancelled], 1) // the owner's cancelled task
		is.Equal(counts[domain.StatusRunning], 1)   // the owner's running task
		exists, err := repo.Exists(ctx, domain.TaskID(domain.NewID()))
		is.NoErr(err)
		is.True(!exists) // no task has a random id
	})

	t.Run("notify_payment_failed is stored once per invoice attempt", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()

		first := newTask(a, domain.TypeNotifyPaymentFailed, inv, 1, now())
		is.Equal(ids(schedule(t, st, a, first)), []domain.TaskID{first.ID}) // the first is stored
		again := newTask(a, domain.TypeNotifyPaymentFailed, inv, 1, now())
		is.Equal(len(schedule(t, st, a, again)), 0) // the same attempt again is not
		_, err := st.Tasks().Get(ctx, a, again.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // nor kept

		cancelled, err := st.Tasks().CancelPending(ctx, a, domain.CancelSelector{InvoiceID: inv}, now())
		is.NoErr(err)
		is.Equal(cancelled, []domain.TaskID{first.ID})
		late := newTask(a, domain.TypeNotifyPaymentFailed, inv, 1, now())
		is.Equal(len(schedule(t, st, a, late)), 0) // whatever the first one's status

		next := newTask(a, domain.TypeNotifyPaymentFailed, inv, 2, now())
		is.Equal(ids(schedule(t, st, a, next)), []domain.TaskID{next.ID}) // the next attempt is stored
		other := newTask(b, domain.TypeNotifyPaymentFailed, inv, 1, now())
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant

		dupInBatch := []domain.Task{newTask(a, domain.TypeNotifyPaymentFailed, inv, 3, now()), newTask(a, domain.TypeNotifyPaymentFailed, inv, 3, now())}
		is.Equal(ids(schedule(t, st, a, dupInBatch...)), []domain.TaskID{dupInBatch[0].ID}) // also within one call
	})

	t.Run("notify_action_required is stored once per invoice attempt", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()

		first := newTask(a, domain.TypeNotifyActionRequired, inv, 1, now())
		is.Equal(ids(schedule(t, st, a, first)), []domain.TaskID{first.ID}) // the first is stored
		again := newTask(a, domain.TypeNotifyActionRequired, inv, 1, now())
		is.Equal(len(schedule(t, st, a, again)), 0) // the same attempt again is not
		_, err := st.Tasks().CancelPending(t.Context(), a, domain.CancelSelector{InvoiceID: inv}, now())
		is.NoErr(err)
		is.Equal(len(schedule(t, st, a, newTask(a, domain.TypeNotifyActionRequired, inv, 1, now()))), 0) // whatever the first one's status

		next := newTask(a, domain.TypeNotifyActionRequired, inv, 2, now())
		is.Equal(ids(schedule(t, st, a, next)), []domain.TaskID{next.ID}) // the next attempt is stored
		other := newTask(b, domain.TypeNotifyActionRequired, inv, 1, now())
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant
		failed := newTask(a, domain.TypeNotifyPaymentFailed, inv, 1, now())
		is.Equal(ids(schedule(t, st, a, failed)), []domain.TaskID{failed.ID}) // and per type

		dup := []domain.Task{newTask(a, domain.TypeNotifyActionRequired, inv, 3, now()), newTask(a, domain.TypeNotifyActionRequired, inv, 3, now())}
		is.Equal(ids(schedule(t, st, a, dup...)), []domain.TaskID{dup[0].ID}) // also within one call
	})

	t.Run("notify_reminder is stored once per invoice and number", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()
		first := newTask(a, domain.TypeNotifyReminder, inv, 1, now())
		second := newTask(a, domain.TypeNotifyReminder, inv, 2, now())
		is.Equal(ids(schedule(t, st, a, first, second)), []domain.TaskID{first.ID, second.ID})     // each reminder of the invoice
		is.Equal(len(schedule(t, st, a, newTask(a, domain.TypeNotifyReminder, inv, 1, now()))), 0) // once
		other := newTask(b, domain.TypeNotifyReminder, inv, 1, now())
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant
	})

	t.Run("notify_card_expiring is stored once per card and month", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		card := "card_" + token()
		expiring := func(m domain.MerchantID, card string, month int) domain.Task {
			t := newTask(m, domain.TypeNotifyCardExpiring, "", month, now())
			t.StripePaymentMethodID = card
			return t
		}
		first := expiring(a, card, 202708)
		is.Equal(ids(schedule(t, st, a, first)), []domain.TaskID{first.ID}) // the first is stored
		is.Equal(len(schedule(t, st, a, expiring(a, card, 202708))), 0)     // the same card and month again is not
		next := expiring(a, card, 202709)
		is.Equal(ids(schedule(t, st, a, next)), []domain.TaskID{next.ID}) // another month is
		other := expiring(a, "card_"+token(), 202708)
		is.Equal(ids(schedule(t, st, a, other)), []domain.TaskID{other.ID}) // another card is
		theirs := expiring(b, card, 202708)
		is.Equal(ids(schedule(t, st, b, theirs)), []domain.TaskID{theirs.ID}) // the rule is per merchant
	})

	t.Run("end_dunning is stored once per invoice", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()
		t0 := now()
		first := newTask(a, domain.TypeEndDunning, inv, 1, t0)
		first.RunAt = t0.Add(30 * 24 * time.Hour)
		is.Equal(ids(schedule(t, st, a, first)), []domain.TaskID{first.ID}) // the first is stored

		sooner := newTask(a, domain.TypeEndDunning, inv, 3, t0.Add(time.Second))
		sooner.RunAt = t0.Add(time.Minute)
		stored := schedule(t, st, a, sooner)
		is.Equal(ids(stored), []domain.TaskID{first.ID}) // a pending one takes the new schedule
		got := mustGet(t, st, a, first.ID)
		is.True(got.RunAt.Equal(sooner.RunAt))
		is.Equal(canon(stored[0]), got)
		_, err := st.Tasks().Get(ctx, a, sooner.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // and no second is kept

		_, err = st.Tasks().CancelPending(ctx, a, domain.CancelSelector{InvoiceID: inv, Types: []domain.TaskType{domain.TypeEndDunning}, Reason: domain.ReasonSuperseded}, now())
		is.NoErr(err)
		again := newTask(a, domain.TypeEndDunning, inv, 4, t0)
		is.Equal(ids(schedule(t, st, a, again)), []domain.TaskID{again.ID}) // a cancelled one does not count

		ran := newTask(a, domain.TypeEndDunning, newInvoiceID(), 1, t0)
		ran.RunAt = claimBase.Add(-time.Minute)
		schedule(t, st, a, ran)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(ids(tasksOf(claimed)), []domain.TaskID{ran.ID})
		is.NoErr(st.Queue().Finish(ctx, a, ran.ID, claimed[0].Attempts, domain.TaskResult{Status: domain.StatusSucceeded, Reason: string(domain.ExhaustedNone), At: now()}))
		late := newTask(a, domain.TypeEndDunning, ran.StripeInvoiceID, 9, t0)
		is.Equal(len(schedule(t, st, a, late)), 0) // once it ran, never again
		is.Equal(mustGet(t, st, a, ran.ID).Status, domain.StatusSucceeded)

		other := newTask(b, domain.TypeEndDunning, inv, 1, t0)
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant
	})

	t.Run("notify_charge_failed is stored once per charge", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)

		first := newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())
		is.Equal(ids(schedule(t, st, a, first)), []domain.TaskID{first.ID}) // the first is stored
		again := newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())
		again.StripeChargeID = first.StripeChargeID
		is.Equal(len(schedule(t, st, a, again)), 0) // the same charge again is not
		_, err := st.Tasks().Get(t.Context(), a, again.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // nor kept
		taskIn(t, st, a, domain.StatusPending)

		other := newTask(b, domain.TypeNotifyChargeFailed, "", 0, now())
		other.StripeChargeID = first.StripeChargeID
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant
		next := newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())
		is.Equal(ids(schedule(t, st, a, next)), []domain.TaskID{next.ID}) // another charge is stored

		dup := []domain.Task{newTask(a, domain.TypeNotifyChargeFailed, "", 0, now()), newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())}
		dup[1].StripeChargeID = dup[0].StripeChargeID
		is.Equal(ids(schedule(t, st, a, dup...)), []domain.TaskID{dup[0].ID}) // also within one call

		bare := []domain.Task{newTask(a, domain.TypeNotifyChargeFailed, "", 0, now()), newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())}
		bare[0].StripeChargeID, bare[1].StripeChargeID = "", ""
		is.Equal(ids(schedule(t, st, a, bare...)), ids(bare)) // tasks that name no charge are not matched
	})

	t.Run("concurrent events of one charge make one email", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		charge := "ch_" + token()

		const n = 8
		start := make(chan struct{})
		errs := make(chan error, n)
		for range n {
			task := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
			task.StripeChargeID = charge
			go func() {
				<-start
				errs <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
					ok, err := tx.Events().AttemptEventLock(ctx, task.StripeEventID)
					if err != nil || !ok {
						return fmt.Errorf("lock %s: %t, %w", task.StripeEventID, ok, err)
					}
					_, err = tx.Tasks().Schedule(ctx, m, []domain.Task{task})
					return err
				})
			}()
		}
		close(start)
		for range n {
			is.NoErr(<-errs) // no unit of work fails
		}
		is.Equal(len(listAll(t, st, m, "", domain.MaxPageSize)), 1) // one task for the charge
	})

	t.Run("text with a NUL is refused and nothing is kept", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		poisons := map[string]func(*domain.Task){
			"customer email": func(t *domain.Task) { t.CustomerEmail = "jenny\x00@example.com" },
			"invoice id":     func(t *domain.Task) { t.StripeInvoiceID = "in_\x00" },
			"event id":       func(t *domain.Task) { t.StripeEventID = "evt_\x00" },
			"last error":     func(t *domain.Task) { t.LastError = "declined\x00" },
			"hosted url":     func(t *domain.Task) { t.HostedInvoiceURL = "https://invoice.example/\x00" },
		}
		for name, poison := range poisons {
			t.Run(name, func(t *testing.T) {
				is := is.New(t)
				good := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
				bad := newTask(m, domain.TypeRetryPayment, newInvoiceID(), 1, now())
				poison(&bad)
				_, err := st.Tasks().Schedule(ctx, m, []domain.Task{good, bad})
				is.True(errors.Is(err, domain.ErrInvalid)) // a NUL in the task's text
				for _, id := range []domain.TaskID{good.ID, bad.ID} {
					exists, err := st.Tasks().Exists(ctx, id)
					is.NoErr(err)
					is.True(!exists) // nothing of the call is stored
				}
			})
		}
		evt := "evt_" + token() + "\x00"
		_, err := lockOnce(ctx, st, evt, false)
		is.True(errors.Is(err, domain.ErrInvalid)) // an event id with a NUL
		won, err := lockOnce(ctx, st, strings.TrimSuffix(evt, "\x00"), false)
		is.NoErr(err)
		is.True(won) // took no lock of another spelling

		err = recordFailure(ctx, st.Ledger(), m, "in_\x00", 100, "usd", now())
		is.True(errors.Is(err, domain.ErrInvalid)) // nor a ledger row
	})

	t.Run("a newer retry_payment replaces the pending one", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		inv := newInvoiceID()
		t0 := now()

		first := newTask(a, domain.TypeRetryPayment, inv, 1, t0)
		first.RunAt = t0.Add(24 * time.Hour)
		notify := newTask(a, domain.TypeNotifyPaymentFailed, inv, 1, t0)
		is.Equal(ids(schedule(t, st, a, notify, first)), []domain.TaskID{notify.ID, first.ID}) // a notify and a retry in one call

		second := newTask(a, domain.TypeRetryPayment, inv, 2, t0.Add(time.Second))
		second.RunAt, second.DeclineCode = t0.Add(72*time.Hour), "insufficient_funds"
		stored := schedule(t, st, a, second)
		is.Equal(len(stored), 1)         // the replacement is returned
		is.Equal(stored[0].ID, first.ID) // under the pending task's id
		got := mustGet(t, st, a, first.ID)
		is.Equal(canon(stored[0]), got)                   // as it is stored
		is.Equal(got.Status, domain.StatusPending)        // still pending
		is.True(got.RunAt.Equal(second.RunAt))            // with the new schedule
		is.Equal(got.StripeEventID, second.StripeEventID) // the new event
		is.Equal(got.InvoiceAttempt, 2)                   // the new attempt
		is.Equal(got.DeclineCode, "insufficient_funds")   // and the new decline code
		is.True(got.CreatedAt.Equal(first.CreatedAt))     // in the list where it was
		_, err := st.Tasks().Get(ctx, a, second.ID)
		is.True(errors.Is(err, domain.ErrNotFound)) // no second task
		is.Equal(pendingRetries(t, st, a, inv), []domain.TaskID{first.ID})

		// A plan is made from the invoice's whole record, so a new one
		// replaces the pending retry whatever its attempt.
		replan := newTask(a, domain.TypeRetryPayment, inv, 2, t0.Add(2*time.Second))
		replan.RunAt = t0.Add(time.Hour)
		stored = schedule(t, st, a, replan)
		is.Equal(ids(stored), []domain.TaskID{first.ID})               // the same task
		is.True(mustGet(t, st, a, first.ID).RunAt.Equal(replan.RunAt)) // moved

		_, err = st.Tasks().CancelPending(ctx, a, domain.CancelSelector{InvoiceID: inv}, now())
		is.NoErr(err)
		third := newTask(a, domain.TypeRetryPayment, inv, 1, t0.Add(3*time.Second))
		is.Equal(ids(schedule(t, st, a, third)), []domain.TaskID{third.ID}) // with no pending retry, any attempt is new
		is.Equal(pendingRetries(t, st, a, inv), []domain.TaskID{third.ID})
		is.Equal(mustGet(t, st, a, first.ID).Status, domain.StatusCancelled) // the old one stays cancelled

		other := newTask(b, domain.TypeRetryPayment, inv, 1, t0)
		is.Equal(ids(schedule(t, st, b, other)), []domain.TaskID{other.ID}) // the rule is per merchant
		is.Equal(pendingRetries(t, st, a, inv), []domain.TaskID{third.ID})
	})

	for _, distinctAttempts := range []bool{false, true} {
		name := "concurrent events of one invoice and attempt make one set of tasks"
		if distinctAttempts {
			name = "concurrent events of one invoice's attempts keep one retry"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := t.Context()
			st := newStorage(t)
			m := newMerchant(t, st)
			inv := newInvoiceID()
			t0 := now()

			const n = 8
			start := make(chan struct{})
			errs := make(chan error, n)
			for i := range n {
				attempt := 1
				if distinctAttempts {
					attempt = i + 1
				}
				notify := newTask(m, domain.TypeNotifyPaymentFailed, inv, attempt, t0)
				retry := newTask(m, domain.TypeRetryPayment, inv, attempt, t0)
				retry.RunAt = t0.Add(time.Duration(attempt) * time.Hour)
				evt := newEventID()
				notify.StripeEventID, retry.StripeEventID = evt, evt
				go func() {
					<-start
					errs <- st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
						ok, err := tx.Events().AttemptEventLock(ctx, evt)
						if err != nil || !ok {
							return fmt.Errorf("lock %s: %t, %w", evt, ok, err)
						}
						_, err = tx.Tasks().Schedule(ctx, m, []domain.Task{notify, retry})
						return err
					})
				}()
			}
			close(start)
			for range n {
				is.NoErr(<-errs) // no unit of work fails
			}
			all := listAll(t, st, m, "", domain.MaxPageSize)
			notifies := 0
			for _, task := range all {
				if task.Type == domain.TypeNotifyPaymentFailed {
					notifies++
				}
			}
			retries := pendingRetries(t, st, m, inv)
			is.Equal(len(retries), 1) // one pending retry
			if distinctAttempts {
				is.Equal(notifies, n) // one notify per attempt
				got := mustGet(t, st, m, retries[0])
				is.True(got.RunAt.Equal(t0.Add(time.Duration(got.InvoiceAttempt) * time.Hour))) // with one event's schedule
			} else {
				is.Equal(notifies, 1) // one notify
			}
		})
	}

	t.Run("pages walk newest first, each task once", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		t0 := now()
		var tasks []domain.Task
		cancelInv := newInvoiceID()
		for i := range 28 {
			created := t0.Add(-time.Duration(i/10) * time.Second) // groups of 10 share a CreatedAt
			inv := newInvoiceID()
			if i%3 == 0 {
				inv = cancelInv
			}
			tasks = append(tasks, newTask(m, domain.TypeNotifyChargeFailed, inv, 0, created))
		}
		slices.Reverse(tasks) // stored in no particular order
		schedule(t, st, m, tasks...)
		cancelled, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: cancelInv}, now())
		is.NoErr(err)
		is.Equal(len(cancelled), 10)

		byStatus := map[domain.TaskStatus][]domain.Task{}
		for _, task := range tasks {
			status := domain.StatusPending
			if task.StripeInvoiceID == cancelInv {
				status = domain.StatusCancelled
			}
			byStatus[status] = append(byStatus[status], task)
		}
		for _, limit := range []int{1, 5, 7, 28, domain.MaxPageSize} {
			is.Equal(ids(listAll(t, st, m, "", limit)), newestFirst(tasks)) // every task once, newest first
			for _, s := range []domain.TaskStatus{domain.StatusPending, domain.StatusCancelled} {
				got := listAll(t, st, m, s, limit)
				is.Equal(ids(got), newestFirst(byStatus[s])) // the status's tasks once, newest first
			}
			is.Equal(len(listAll(t, st, m, domain.StatusFailed, limit)), 0) // a status without tasks
		}
		page, err := st.Tasks().List(ctx, m, domain.TaskFilter{Limit: len(tasks)})
		is.NoErr(err)
		is.Equal(len(page.Tasks), len(tasks)) // a page as long as the list
		is.True(page.Next == nil)             // is the last page
		page, err = st.Tasks().List(ctx, newMerchant(t, st), domain.TaskFilter{Limit: 10})
		is.NoErr(err)
		is.Equal(len(page.Tasks), 0) // a merchant without tasks
		is.True(page.Next == nil)    // has one empty page
	})

	t.Run("tasks added during a walk neither repeat nor hide others", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		t0 := now()
		var tasks []domain.Task
		for i := range 40 {
			tasks = append(tasks, newTask(m, domain.TypeNotifyChargeFailed, "", 0, t0.Add(-time.Duration(i/4)*time.Millisecond)))
		}
		schedule(t, st, m, tasks...)
		// The walk starts before anything newer exists; from then on a
		// writer keeps adding newer tasks, and the walk adds some between
		// its pages too.
		f := domain.TaskFilter{Limit: 3}
		page, err := st.Tasks().List(ctx, m, f)
		is.NoErr(err)
		walked := page.Tasks
		stop, stopped := make(chan struct{}), make(chan error, 1)
		go func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					stopped <- nil
					return
				default:
				}
				newer := newTask(m, domain.TypeNotifyChargeFailed, "", 0, t0.Add(time.Hour+time.Duration(i)*time.Microsecond))
				if _, err := st.Tasks().Schedule(ctx, m, []domain.Task{newer}); err != nil {
					stopped <- err
					return
				}
			}
		}()
		for page.Next != nil {
			newer := newTask(m, domain.TypeNotifyChargeFailed, "", 0, t0.Add(2*time.Hour+time.Duration(len(walked))*time.Microsecond))
			schedule(t, st, m, newer)
			f.After = page.Next
			page, err = st.Tasks().List(ctx, m, f)
			is.NoErr(err)
			walked = append(walked, page.Tasks...)
		}
		close(stop)
		is.NoErr(<-stopped)                       // the concurrent writer did not fail
		is.Equal(ids(walked), newestFirst(tasks)) // every original task once, in order, and nothing newer
	})

	t.Run("retry sends failed and cancelled tasks back to pending", func(t *testing.T) {
		t.Parallel()
		st := newStorage(t)
		m := newMerchant(t, st)
		for _, status := range domain.TaskStatuses {
			t.Run(string(status), func(t *testing.T) {
				is := is.New(t)
				before := taskIn(t, st, m, status)
				at := now().Add(time.Minute)
				got, err := st.Tasks().Retry(t.Context(), m, before.ID, at)
				if !status.Retryable() {
					is.True(errors.Is(err, domain.ErrConflict))    // only failed and cancelled tasks can be retried
					is.Equal(mustGet(t, st, m, before.ID), before) // and the task is unchanged
					return
				}
				is.NoErr(err)
				is.Equal(got.ID, before.ID)
				is.Equal(got.Status, domain.StatusPending) // pending again
				is.True(got.RunAt.Equal(at))               // due at now
				is.Equal(mustGet(t, st, m, before.ID), canon(got))
			})
		}
		is := is.New(t)
		_, err := st.Tasks().Retry(t.Context(), m, domain.TaskID(domain.NewID()), now())
		is.True(errors.Is(err, domain.ErrNotFound)) // no such task
	})

	t.Run("delete removes any task but a running one", func(t *testing.T) {
		t.Parallel()
		st := newStorage(t)
		m := newMerchant(t, st)
		ctx := t.Context()
		for _, status := range domain.TaskStatuses {
			t.Run(string(status), func(t *testing.T) {
				is := is.New(t)
				before := taskIn(t, st, m, status)
				err := st.Tasks().Delete(ctx, m, before.ID)
				if status == domain.StatusRunning {
					is.True(errors.Is(err, domain.ErrConflict))    // a running task stays
					is.Equal(mustGet(t, st, m, before.ID), before) // unchanged
					return
				}
				is.NoErr(err)
				_, err = st.Tasks().Get(ctx, m, before.ID)
				is.True(errors.Is(err, domain.ErrNotFound)) // gone
				exists, err := st.Tasks().Exists(ctx, before.ID)
				is.NoErr(err)
				is.True(!exists) // for every merchant
				err = st.Tasks().Delete(ctx, m, before.ID)
				is.True(errors.Is(err, domain.ErrNotFound)) // deleting again finds nothing
			})
		}
	})

	t.Run("cancel picks the pending tasks of an invoice or a subscription", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		inv, sub := newInvoiceID(), "sub_"+token()
		running := taskIn(t, st, m, domain.StatusRunning)

		ofInvoice := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1, now())
		ofInvoice2 := newTask(m, domain.TypeRetryPayment, inv, 1, now())
		ofSub := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
		ofSub.StripeSubscriptionID = sub
		other := newTask(m, domain.TypeNotifyChargeFailed, newInvoiceID(), 0, now())
		schedule(t, st, m, ofInvoice, ofInvoice2, ofSub, other)

		at := now().Add(time.Second)
		got, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: inv}, at)
		is.NoErr(err)
		slices.Sort(got)
		want := []domain.TaskID{ofInvoice.ID, ofInvoice2.ID}
		slices.Sort(want)
		is.Equal(got, want) // the invoice's pending tasks
		for _, id := range want {
			is.Equal(mustGet(t, st, m, id).Status, domain.StatusCancelled)
		}
		got, err = st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: inv}, at)
		is.NoErr(err)
		is.Equal(len(got), 0) // cancelled tasks are not cancelled again

		got, err = st.Tasks().CancelPending(ctx, m, domain.CancelSelector{SubscriptionID: sub}, at)
		is.NoErr(err)
		is.Equal(got, []domain.TaskID{ofSub.ID}) // the subscription's pending task
		got, err = st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: running.StripeInvoiceID}, at)
		is.NoErr(err)
		is.Equal(len(got), 0)                               // a running task is not pending
		is.Equal(mustGet(t, st, m, running.ID), running)    // and stays as it is
		is.Equal(mustGet(t, st, m, other.ID), canon(other)) // other tasks are untouched

		counts, err := st.Tasks().CountByStatus(ctx, m)
		is.NoErr(err)
		is.Equal(counts[domain.StatusCancelled], 3)
		is.Equal(counts[domain.StatusPending], 1)
		is.Equal(counts[domain.StatusRunning], 1)
	})
}

// unruledTask is a new task that no "at most one" rule matches (a
// notify_charge_failed that names no charge), for cases about ids.
func unruledTask(m domain.MerchantID) domain.Task {
	t := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
	t.StripeChargeID = ""
	return t
}

// pendingRetries returns the ids of the merchant's pending retry_payment
// tasks of the invoice.
func pendingRetries(t *testing.T, st ports.Storage, m domain.MerchantID, inv string) []domain.TaskID {
	t.Helper()
	var out []domain.TaskID
	for _, task := range listAll(t, st, m, domain.StatusPending, domain.MaxPageSize) {
		if task.Type == domain.TypeRetryPayment && task.StripeInvoiceID == inv {
			out = append(out, task.ID)
		}
	}
	return out
}
