package porttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunQueueContract checks the worker's queue: what is due, exclusive
// claims under concurrency, leases, finishing a claim, the backlog.
func RunQueueContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	dueTask := func(m domain.MerchantID, runAt time.Time) domain.Task {
		task := newTask(m, domain.TypeNotifyChargeFailed, newInvoiceID(), 0, now())
		task.RunAt = runAt
		return task
	}

	t.Run("a claim brings its merchant's policy and its invoice's record", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		mine := domain.DefaultDunningPolicy()
		mine.MaxAttempts, mine.HardDeclineCodes = 3, []string{"stolen_card"}
		mine.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {72}}
		is.NoErr(st.Policies().SetPolicy(ctx, a, mine))

		// One invoice id at both merchants, with different records: each
		// task gets its own merchant's.
		shared, unrecorded := newInvoiceID(), newInvoiceID()
		at := claimBase.Add(-time.Hour)
		recA, err := st.Ledger().Record(ctx, a, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: shared, CustomerID: "cus_a",
			AmountDue: 1200, Currency: "eur", AttemptCount: 2, DeclineCode: "insufficient_funds", At: at})
		is.NoErr(err)
		_, err = st.Ledger().Record(ctx, b, domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: shared, CustomerID: "cus_b",
			AmountDue: 99, Currency: "jpy", AttemptCount: 1, At: at})
		is.NoErr(err)

		retryA := newTask(a, domain.TypeRetryPayment, shared, 2, now())
		noRecord := newTask(a, domain.TypeRetryPayment, unrecorded, 1, now())
		noInvoice := newTask(b, domain.TypeNotifyCardExpiring, "", 0, now())
		for _, task := range []*domain.Task{&retryA, &noRecord, &noInvoice} {
			task.RunAt = claimBase.Add(-time.Minute)
		}
		retryB := newTask(b, domain.TypeRetryPayment, shared, 1, now())
		retryB.RunAt = claimBase.Add(-time.Second)
		schedule(t, st, a, retryA, noRecord)
		schedule(t, st, b, noInvoice, retryB)

		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 4) // every due task
		byID := map[domain.TaskID]ports.Claim{}
		for _, c := range claimed {
			byID[c.ID] = c
		}
		got := byID[retryA.ID]
		is.Equal(got.Policy, mine)   // the merchant's stored policy
		is.True(got.Invoice != nil)  // and its record of the invoice
		is.Equal(*got.Invoice, recA) // as the ledger keeps it
		got = byID[retryB.ID]
		is.Equal(got.Policy, domain.DefaultDunningPolicy()) // a merchant without a policy has the default
		is.True(got.Invoice != nil)
		is.Equal(got.Invoice.MerchantID, b) // the other merchant's record of the same invoice id
		is.Equal(got.Invoice.CustomerID, "cus_b")
		is.Equal(got.Invoice.AmountDue, int64(99))
		is.True(byID[noRecord.ID].Invoice == nil)  // no record: nil
		is.True(byID[noInvoice.ID].Invoice == nil) // no invoice: nil
		is.Equal(byID[noRecord.ID].Policy, mine)

		// The claim's copies are the caller's: changing them changes
		// nothing stored.
		got = byID[retryA.ID]
		got.Policy.HardDeclineCodes[0] = "changed"
		got.Policy.DelaysByDeclineCode["insufficient_funds"][0] = 1
		got.Invoice.CustomerID = "changed"
		p, err := st.Policies().Policy(ctx, a)
		is.NoErr(err)
		is.Equal(p, mine)
		rec, err := st.Ledger().Invoice(ctx, a, shared)
		is.NoErr(err)
		is.Equal(rec, recA)
	})

	t.Run("only due pending tasks are claimed", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		at := claimBase
		early, onTime := dueTask(a, at.Add(-time.Minute)), dueTask(b, at)
		later := dueTask(a, at.Add(time.Microsecond))
		cancelled := dueTask(a, at.Add(-time.Hour))
		schedule(t, st, a, early, later, cancelled)
		schedule(t, st, b, onTime)
		_, err := st.Tasks().CancelPending(ctx, a, domain.CancelSelector{InvoiceID: cancelled.StripeInvoiceID}, now())
		is.NoErr(err)

		claimed, err := st.Queue().ClaimDue(ctx, at, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 2) // the two due pending tasks, across merchants
		byID := map[domain.TaskID]domain.Task{}
		for _, c := range claimed {
			byID[c.ID] = c.Task
			is.Equal(c.Status, domain.StatusRunning) // claimed tasks are running
			is.Equal(c.Attempts, 1)                  // with Attempts incremented
			is.Equal(mustGet(t, st, c.MerchantID, c.ID), canon(c.Task))
		}
		_, ok := byID[early.ID]
		is.True(ok) // due before now
		_, ok = byID[onTime.ID]
		is.True(ok)                                                        // due at now
		is.Equal(mustGet(t, st, a, later.ID).Status, domain.StatusPending) // not due yet

		again, err := st.Queue().ClaimDue(ctx, at, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(again), 0) // a claimed task is not handed out again
	})

	t.Run("claims stop at the limit", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		for i := range 5 {
			schedule(t, st, m, dueTask(m, claimBase.Add(-time.Duration(i)*time.Second)))
		}
		for _, want := range []int{2, 2, 1, 0} {
			claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 2)
			is.NoErr(err)
			is.Equal(len(claimed), want) // at most limit tasks a claim
		}
	})

	t.Run("concurrent claimers never share a task", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		const merchants, perMerchant, workers = 4, 50, 20
		for range merchants {
			m := newMerchant(t, st)
			var tasks []domain.Task
			for i := range perMerchant {
				tasks = append(tasks, dueTask(m, claimBase.Add(-time.Duration(i)*time.Millisecond)))
			}
			schedule(t, st, m, tasks...)
		}
		type result struct {
			tasks []domain.Task
			err   error
		}
		start := make(chan struct{})
		results := make(chan result, workers)
		for range workers {
			go func() {
				<-start
				var mine []domain.Task
				for {
					claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 7)
					if err != nil || len(claimed) == 0 {
						results <- result{mine, err}
						return
					}
					mine = append(mine, tasksOf(claimed)...)
				}
			}()
		}
		close(start)
		var all []domain.Task
		for range workers {
			r := <-results
			is.NoErr(r.err) // no claim fails
			all = append(all, r.tasks...)
		}
		// A claimer may stop early while others hold rows it skipped; what
		// is left is claimed here, still never twice.
		rest, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, merchants*perMerchant)
		is.NoErr(err)
		all = append(all, tasksOf(rest)...)
		seen := map[domain.TaskID]bool{}
		for _, c := range all {
			is.True(!seen[c.ID]) // each task is claimed once
			seen[c.ID] = true
			is.Equal(c.Attempts, 1) // by one claim
		}
		is.Equal(len(seen), merchants*perMerchant) // every due task is claimed
	})

	t.Run("an expired lease makes a task claimable again", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		task := dueTask(m, claimBase.Add(-time.Minute))
		schedule(t, st, m, task)
		q := st.Queue()

		first, err := q.ClaimDue(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(first), 1)
		none, err := q.ClaimDue(ctx, claimBase.Add(30*time.Second), time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(none), 0) // the lease still holds
		second, err := q.ClaimDue(ctx, claimBase.Add(2*time.Minute), time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(second), 1) // the lease expired: its worker died
		is.Equal(second[0].ID, task.ID)
		is.Equal(second[0].Attempts, 2) // a new attempt

		before := mustGet(t, st, m, task.ID)
		err = q.Finish(ctx, m, task.ID, first[0].Attempts, domain.TaskResult{Status: domain.StatusSucceeded, At: now()})
		is.True(errors.Is(err, domain.ErrConflict))  // the first claim no longer holds
		is.Equal(mustGet(t, st, m, task.ID), before) // and changes nothing
		is.NoErr(q.Finish(ctx, m, task.ID, second[0].Attempts, domain.TaskResult{Status: domain.StatusSucceeded, At: now()}))
		is.Equal(mustGet(t, st, m, task.ID).Status, domain.StatusSucceeded) // the current claim finishes
	})

	t.Run("finish records how the run ended", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		task := dueTask(m, claimBase.Add(-time.Minute))
		schedule(t, st, m, task)
		q := st.Queue()

		claimed, err := q.ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		backoff := claimBase.Add(10 * time.Minute)
		is.NoErr(q.Finish(ctx, m, task.ID, 1, domain.TaskResult{Status: domain.StatusPending, RunAt: backoff, LastError: "card_declined", At: now()}))
		got := mustGet(t, st, m, task.ID)
		is.Equal(got.Status, domain.StatusPending) // back to pending
		is.True(got.RunAt.Equal(backoff))          // at the backoff
		is.Equal(got.LastError, "card_declined")   // with the error
		is.Equal(got.Attempts, 1)                  // Finish does not count attempts

		err = q.Finish(ctx, m, task.ID, 1, domain.TaskResult{Status: domain.StatusSucceeded, At: now()})
		is.True(errors.Is(err, domain.ErrConflict)) // a finished claim cannot finish again
		is.Equal(mustGet(t, st, m, task.ID), got)   // and changes nothing

		early, err := q.ClaimDue(ctx, backoff.Add(-time.Microsecond), time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(early), 0) // not due before the backoff
		claimed, err = q.ClaimDue(ctx, backoff, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		is.Equal(claimed[0].Attempts, 2) // the second run
		is.NoErr(q.Finish(ctx, m, task.ID, 2, domain.TaskResult{Status: domain.StatusFailed, LastError: "gave up",
			Reason: domain.ReasonDeclined, DeclineCode: "insufficient_funds", At: now()}))
		got = mustGet(t, st, m, task.ID)
		is.Equal(got.Status, domain.StatusFailed)
		is.Equal(got.LastError, "gave up")
		is.Equal(got.Attempts, 2)
		is.Equal(got.Reason, domain.ReasonDeclined)     // how it ended
		is.Equal(got.DeclineCode, "insufficient_funds") // and its decline
	})

	t.Run("finish keeps the decline code unless it names one", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		task := dueTask(m, claimBase.Add(-time.Minute))
		task.DeclineCode = "do_not_honor"
		schedule(t, st, m, task)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		is.NoErr(st.Queue().Finish(ctx, m, task.ID, 1, domain.TaskResult{Status: domain.StatusSucceeded, Reason: domain.ReasonSent, At: now()}))
		got := mustGet(t, st, m, task.ID)
		is.Equal(got.DeclineCode, "do_not_honor") // kept
		is.Equal(got.Reason, domain.ReasonSent)
	})

	t.Run("a finish in a unit of work rolls back with it", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		task := dueTask(m, claimBase.Add(-time.Minute))
		schedule(t, st, m, task)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		before := mustGet(t, st, m, task.ID)
		added := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if err := tx.Queue().Finish(ctx, m, task.ID, 1, domain.TaskResult{Status: domain.StatusSucceeded, At: now()}); err != nil {
				return err
			}
			if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{added}); err != nil {
				return err
			}
			return errRollback
		})
		is.True(errors.Is(err, errRollback))
		is.Equal(mustGet(t, st, m, task.ID), before) // still running, claimed as before
		exists, err := st.Tasks().Exists(ctx, added.ID)
		is.NoErr(err)
		is.True(!exists) // and nothing else of it kept
		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			return tx.Queue().Finish(ctx, m, task.ID, 1, domain.TaskResult{Status: domain.StatusSucceeded, At: now()})
		})
		is.NoErr(err)
		is.Equal(mustGet(t, st, m, task.ID).Status, domain.StatusSucceeded) // committed, it holds
	})

	t.Run("a running retry cannot go back to pending beside a newer one", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		inv := newInvoiceID()
		old := dueTask(m, claimBase.Add(-time.Minute))
		old.Type, old.StripeInvoiceID, old.InvoiceAttempt = domain.TypeRetryPayment, inv, 1
		schedule(t, st, m, old)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		// While it runs, the invoice fails again and a newer retry is due
		// later: it is stored beside the running one.
		newer := newTask(m, domain.TypeRetryPayment, inv, 2, now())
		is.Equal(len(schedule(t, st, m, newer)), 1)

		running := mustGet(t, st, m, old.ID)
		err = st.Queue().Finish(ctx, m, old.ID, 1, domain.TaskResult{Status: domain.StatusPending, RunAt: claimBase.Add(time.Hour), At: now()})
		is.True(errors.Is(err, domain.ErrConflict))  // two pending retries of one invoice would break the rule
		is.Equal(mustGet(t, st, m, old.ID), running) // and nothing changed
		is.NoErr(st.Queue().Finish(ctx, m, old.ID, 1, domain.TaskResult{Status: domain.StatusCancelled, LastError: "superseded", At: now()}))
		is.Equal(mustGet(t, st, m, old.ID).Status, domain.StatusCancelled) // it can end otherwise
		is.Equal(mustGet(t, st, m, newer.ID).Status, domain.StatusPending) // the newer one is untouched
	})

	t.Run("the backlog counts due tasks and the oldest", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		q := st.Queue()

		count, oldest, err := q.Backlog(ctx, claimBase)
		is.NoErr(err)
		is.Equal(count, 0)       // nothing due
		is.True(oldest.IsZero()) // and no oldest

		cancelled := dueTask(a, claimBase.Add(-time.Hour))
		schedule(t, st, a, dueTask(a, claimBase.Add(-3*time.Minute)), dueTask(a, claimBase), dueTask(a, claimBase.Add(time.Minute)), cancelled)
		schedule(t, st, b, dueTask(b, claimBase.Add(-2*time.Minute)))
		_, err = st.Tasks().CancelPending(ctx, a, domain.CancelSelector{InvoiceID: cancelled.StripeInvoiceID}, now())
		is.NoErr(err)
		count, oldest, err = q.Backlog(ctx, claimBase)
		is.NoErr(err)
		is.Equal(count, 3)                                     // due pending tasks of every merchant
		is.True(oldest.Equal(claimBase.Add(-3 * time.Minute))) // the oldest due RunAt

		claimed, err := q.ClaimDue(ctx, claimBase, time.Hour, 1)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		count, oldest, err = q.Backlog(ctx, claimBase)
		is.NoErr(err)
		is.Equal(count, 2)                                     // a claimed task is no longer due
		is.True(oldest.Equal(claimBase.Add(-2 * time.Minute))) // claims take the oldest first
	})
}
