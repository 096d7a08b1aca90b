package app_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

func TestTaskServiceGet(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	a, b := u.merchant(t, "Alice's"), u.merchant(t, "Bob's")
	bTask := u.taskIn(t, b.ID, domain.StatusPending)

	got, err := u.tasks.Get(ctx, b, bTask.ID)
	is.NoErr(err)        // B reads its own task
	is.Equal(got, bTask) // as stored
	_, err = u.tasks.Get(ctx, a, bTask.ID)
	is.True(errors.Is(err, domain.ErrForbidden)) // A may not: the task is B's
	_, err = u.tasks.Get(ctx, a, domain.TaskID(domain.NewID()))
	is.True(errors.Is(err, domain.ErrNotFound)) // no such task at all
}

// TestTaskServiceOtherMerchantsTask: every use case on another merchant's
// task is ErrForbidden and changes nothing; on a task that does not exist
// it is ErrNotFound.
func TestTaskServiceOtherMerchantsTask(t *testing.T) {
	ops := []struct {
		name string
		call func(u *useCases, m domain.Merchant, id domain.TaskID) error
	}{
		{"get", func(u *useCases, m domain.Merchant, id domain.TaskID) error {
			_, err := u.tasks.Get(context.Background(), m, id)
			return err
		}},
		{"retry", func(u *useCases, m domain.Merchant, id domain.TaskID) error {
			_, err := u.tasks.Retry(context.Background(), m, id)
			return err
		}},
		{"delete", func(u *useCases, m domain.Merchant, id domain.TaskID) error {
			return u.tasks.Delete(context.Background(), m, id)
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			owner, other := u.merchant(t, "Owner"), u.merchant(t, "Other")
			target := u.taskIn(t, owner.ID, domain.StatusCancelled) // retryable and deletable by its owner
			u.taskIn(t, other.ID, domain.StatusCancelled)           // the caller has tasks of its own
			otherBefore := u.tasksOf(t, other.ID)

			err := op.call(u, other, target.ID)
			is.True(errors.Is(err, domain.ErrForbidden))    // refused: the task is the owner's
			is.Equal(u.get(t, owner.ID, target.ID), target) // and unchanged
			is.Equal(u.tasksOf(t, other.ID), otherBefore)   // nor did the caller's own tasks change

			err = op.call(u, other, domain.TaskID(domain.NewID()))
			is.True(errors.Is(err, domain.ErrNotFound)) // no such task
			err = op.call(u, owner, domain.TaskID(domain.NewID()))
			is.True(errors.Is(err, domain.ErrNotFound)) // for anyone

			is.NoErr(op.call(u, owner, target.ID)) // the owner may
		})
	}
}

func TestTaskServiceRetryAndDeleteRules(t *testing.T) {
	cases := []struct {
		status         domain.TaskStatus
		retry, deleted error // nil: allowed
	}{
		{domain.StatusPending, domain.ErrConflict, nil},
		{domain.StatusRunning, domain.ErrConflict, domain.ErrConflict},
		{domain.StatusSucceeded, domain.ErrConflict, nil},
		{domain.StatusFailed, nil, nil},
		{domain.StatusCancelled, nil, nil},
	}
	for _, tc := range cases {
		t.Run("retry "+string(tc.status), func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil) // taskIn needs a store where nothing else is due
			m := u.merchant(t, "Rules Inc")
			task := u.taskIn(t, m.ID, tc.status)
			u.clock.Add(time.Hour)

			got, err := u.tasks.Retry(context.Background(), m, task.ID)
			if tc.retry != nil {
				is.True(errors.Is(err, tc.retry))       // refused
				is.Equal(u.get(t, m.ID, task.ID), task) // and nothing changed
				return
			}
			is.NoErr(err)
			is.Equal(got.ID, task.ID)
			is.Equal(got.Status, domain.StatusPending)          // back to pending
			is.True(got.RunAt.Equal(u.clock.Now()))             // due now
			is.Equal(u.get(t, m.ID, task.ID), got)              // as stored
			is.Equal(got.StripeInvoiceID, task.StripeInvoiceID) // the same task
		})
		t.Run("delete "+string(tc.status), func(t *testing.T) {
			is := is.New(t)
			u := newUseCases(t, nil)
			m, other := u.merchant(t, "Rules Inc"), u.merchant(t, "Other")
			task := u.taskIn(t, m.ID, tc.status)

			err := u.tasks.Delete(context.Background(), m, task.ID)
			if tc.deleted != nil {
				is.True(errors.Is(err, tc.deleted))     // refused
				is.Equal(u.get(t, m.ID, task.ID), task) // and nothing changed
				return
			}
			is.NoErr(err)
			_, err = u.tasks.Get(context.Background(), m, task.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // gone
			_, err = u.tasks.Get(context.Background(), other, task.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // for everyone: no longer another merchant's
			err = u.tasks.Delete(context.Background(), m, task.ID)
			is.True(errors.Is(err, domain.ErrNotFound)) // deleting twice finds nothing
		})
	}
}

func TestTaskServiceList(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	a, b := u.merchant(t, "A"), u.merchant(t, "B")
	start := u.clock.Now().Add(-time.Hour)
	var aTasks []domain.Task
	for i := range 5 {
		aTasks = append(aTasks, u.schedule(t, a.ID, start.Add(time.Duration(i)*time.Minute), start.Add(2*time.Hour)))
		u.schedule(t, b.ID, start.Add(time.Duration(i)*time.Minute), start.Add(2*time.Hour))
	}
	slices.Reverse(aTasks) // newest first

	t.Run("pages of the merchant's tasks, newest first", func(t *testing.T) {
		is := is.New(t)
		var got []domain.Task
		f := domain.TaskFilter{Limit: 2}
		for range 10 {
			page, err := u.tasks.List(ctx, a, f)
			is.NoErr(err)
			is.True(len(page.Tasks) <= 2) // at most the limit
			got = append(got, page.Tasks...)
			if page.Next == nil {
				break
			}
			f.After = page.Next
		}
		is.Equal(got, aTasks) // every task of A once, newest first, and no task of B
	})

	t.Run("a status", func(t *testing.T) {
		is := is.New(t)
		cancelled := u.taskIn(t, a.ID, domain.StatusCancelled)
		u.taskIn(t, b.ID, domain.StatusCancelled)
		page, err := u.tasks.List(ctx, a, domain.TaskFilter{Status: domain.StatusCancelled, Limit: 10})
		is.NoErr(err)
		is.Equal(page.Tasks, []domain.Task{cancelled}) // only A's task in that status
		is.Equal(page.Next, nil)
	})

	t.Run("the default page", func(t *testing.T) {
		is := is.New(t)
		c := u.merchant(t, "C")
		for range domain.DefaultPageSize + 1 {
			u.schedule(t, c.ID, start, start.Add(2*time.Hour))
		}
		page, err := u.tasks.List(ctx, c, domain.TaskFilter{})
		is.NoErr(err)
		is.Equal(len(page.Tasks), domain.DefaultPageSize) // a limit of 0 is the default page size
		is.True(page.Next != nil)                         // with more to come
	})

	t.Run("bad input", func(t *testing.T) {
		for _, f := range []domain.TaskFilter{
			{Limit: -1}, {Limit: domain.MaxPageSize + 1}, {Status: "lost", Limit: 10}, {Status: "all", Limit: 10},
		} {
			t.Run(fmt.Sprintf("limit %d status %q", f.Limit, f.Status), func(t *testing.T) {
				is := is.New(t)
				_, err := u.tasks.List(ctx, a, f)
				is.True(errors.Is(err, domain.ErrInvalid)) // refused as invalid
			})
		}
		for _, limit := range []int{1, domain.MaxPageSize} {
			_, err := u.tasks.List(ctx, a, domain.TaskFilter{Limit: limit})
			is.NoErr(err) // the bounds themselves are fine
		}
	})
}

// TestTaskServiceListProperty walks random merchants' lists, with random
// statuses and page sizes, over many tasks whose creation times often tie:
// each walk must give exactly the merchant's tasks of that status, each
// once, newest first (ties by id).
func TestTaskServiceListProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	u := newUseCases(t, nil)
	ctx := context.Background()
	merchants := []domain.Merchant{u.merchant(t, "M1"), u.merchant(t, "M2"), u.merchant(t, "M3"), u.merchant(t, "M4")}

	// Few distinct creation times, so that ties are common and the order
	// must fall back to the id.
	now := u.clock.Now()
	base := now.Add(-time.Hour)
	want := map[domain.TaskID]domain.TaskStatus{}
	var all []domain.Task
	for range 400 {
		m := merchants[rng.IntN(len(merchants))]
		status := domain.TaskStatuses[rng.IntN(len(domain.TaskStatuses))]
		runAt := now.Add(time.Hour)
		if status == domain.StatusRunning || status == domain.StatusFailed || status == domain.StatusSucceeded {
			runAt = now.Add(-time.Minute) // due, to be claimed below
		}
		created := base.Add(time.Duration(rng.IntN(60)) * time.Second)
		if rng.IntN(4) == 0 {
			created = created.Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
		}
		task := u.schedule(t, m.ID, created, runAt)
		all = append(all, task)
		want[task.ID] = status
		if status == domain.StatusCancelled {
			if _, err := u.mem.Tasks().CancelPending(ctx, m.ID, domain.CancelSelector{InvoiceID: task.StripeInvoiceID}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	claimed, err := u.mem.Queue().ClaimDue(ctx, now, time.Hour, len(all))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range claimed {
		if s := want[c.ID]; s != domain.StatusRunning {
			if err := u.mem.Queue().Finish(ctx, c.MerchantID, c.ID, c.Attempts, domain.TaskResult{Status: s, At: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range all {
		all[i] = u.get(t, all[i].MerchantID, all[i].ID)
		if all[i].Status != want[all[i].ID] {
			t.Fatalf("setup: task %s is %s, want %s", all[i].ID, all[i].Status, want[all[i].ID])
		}
	}
	slices.SortFunc(all, domain.NewerFirst)

	statuses := append([]domain.TaskStatus{""}, domain.TaskStatuses...)
	for round := range 40 {
		m := merchants[rng.IntN(len(merchants))]
		status := statuses[rng.IntN(len(statuses))]
		limit := 1 + rng.IntN(25)
		if round%10 == 0 {
			limit = domain.MaxPageSize
		}
		t.Run(fmt.Sprintf("%d/%s/status=%s/limit=%d", round, m.Name, status, limit), func(t *testing.T) {
			is := is.New(t)
			var wantIDs, gotIDs []domain.TaskID
			for _, task := range all {
				if task.MerchantID == m.ID && (status == "" || task.Status == status) {
					wantIDs = append(wantIDs, task.ID)
				}
			}
			f := domain.TaskFilter{Status: status, Limit: limit}
			for range 1_000 {
				page, err := u.tasks.List(ctx, m, f)
				is.NoErr(err)
				is.True(len(page.Tasks) <= limit) // a page holds at most the limit
				for _, task := range page.Tasks {
					is.Equal(task.MerchantID, m.ID) // only the caller's tasks
					if status != "" {
						is.Equal(task.Status, status) // only the status asked for
					}
					gotIDs = append(gotIDs, task.ID)
				}
				if page.Next == nil {
					break
				}
				is.True(len(page.Tasks) > 0) // no empty page before the last
				f.After = page.Next
			}
			is.Equal(gotIDs, wantIDs) // each task once, newest first
		})
	}
}

func TestTaskServiceStats(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	a, b := u.merchant(t, "A"), u.merchant(t, "B")
	invX, invY := stripetest.NewID("in_"), stripetest.NewID("in_")
	u.handle(t, paymentFailedEvent(a.StripeAccountID, invX, "sub_1", 1))
	u.handle(t, paymentFailedEvent(a.StripeAccountID, invY, "sub_2", 1))
	u.handle(t, paymentFailedEvent(b.StripeAccountID, invX, "sub_1", 1)) // the same invoice id at another merchant
	u.handle(t, invoiceEvent(domain.EventInvoicePaid, a.StripeAccountID, invX, "sub_1"))

	st, err := u.tasks.Stats(ctx, a, nil, nil)
	is.NoErr(err)
	is.Equal(st.ByCurrency["usd"], domain.CurrencyRecovery{FailedAmount: 4000, RecoveredAmount: 2000}) // two failures, one paid
	is.Equal(st.ByCurrency["usd"].Rate(), 0.5)
	is.Equal(st.TasksByStatus[domain.StatusPending], tasksPerFailure)   // invoice Y's
	is.Equal(st.TasksByStatus[domain.StatusCancelled], tasksPerFailure) // invoice X's
	is.Equal(st.TasksByStatus[domain.StatusRunning], 0)

	st, err = u.tasks.Stats(ctx, b, nil, nil)
	is.NoErr(err)
	is.Equal(st.ByCurrency["usd"], domain.CurrencyRecovery{FailedAmount: 2000}) // A's payment is not B's recovery
	is.Equal(st.TasksByStatus[domain.StatusPending], tasksPerFailure)           // nor are A's tasks B's
	is.Equal(st.TasksByStatus[domain.StatusCancelled], 0)

	st, err = u.tasks.Stats(ctx, u.merchant(t, "New"), nil, nil)
	is.NoErr(err)
	is.Equal(len(st.ByCurrency), 0) // nothing yet
	for _, n := range st.TasksByStatus {
		is.Equal(n, 0)
	}
}
