package porttest

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunStorageContract runs every storage contract case against adapters that
// newStorage makes.
func RunStorageContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	suites := []struct {
		name string
		run  func(*testing.T, func(t *testing.T) ports.Storage)
	}{
		{"UnitOfWork", RunUnitOfWorkContract},
		{"TaskRepository", RunTaskRepositoryContract},
		{"MerchantDirectory", RunMerchantDirectoryContract},
		{"Ledger", RunLedgerContract},
		{"Policy", RunPolicyContract},
		{"EmailLog", RunEmailLogContract},
		{"Leases", RunLeasesContract},
		{"Sessions", RunSessionsContract},
		{"Outbound", RunOutboundContract},
		{"Queue", RunQueueContract},
		{"EventRetention", RunEventRetentionContract},
		{"Volume", RunVolumeContract},
		{"Sums", RunSumsContract},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, newStorage)
		})
	}
	t.Run("Ping", func(t *testing.T) {
		t.Parallel()
		if err := newStorage(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// errRollback is what the suites' units of work fail with to roll back.
var errRollback = errors.New("porttest: roll back")

// now is the current time as storage keeps it.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// claimBase is the "now" the suites' workers claim at: long before any task
// the suites schedule for later (those are due an hour after time.Now), so
// that only the tasks a case makes due are claimed.
var claimBase = time.Date(2001, 2, 3, 4, 5, 6, 789000, time.UTC)

func token() string { return rand.Text() }

func newEventID() string { return "evt_" + token() }

func newInvoiceID() string { return "in_" + token() }

// newMerchant stores a fresh merchant and returns its id.
func newMerchant(t *testing.T, st ports.Storage) domain.MerchantID {
	t.Helper()
	m := domain.Merchant{
		ID: domain.MerchantID(domain.NewID()), Name: "Porttest " + token()[:8],
		StripeAccountID: "acct_" + token(), CreatedAt: now(),
	}
	_, key, err := domain.NewAPIKey(m.ID, now())
	if err != nil {
		t.Fatalf("new api key: %v", err)
	}
	if err := st.Merchants().CreateMerchant(t.Context(), m, key); err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	return m.ID
}

// newTask returns a pending task for the merchant, created at created and
// due an hour later, with every field set.
func newTask(m domain.MerchantID, typ domain.TaskType, invoice string, attempt int, created time.Time) domain.Task {
	created = created.UTC().Truncate(time.Microsecond)
	return domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: typ, Status: domain.StatusPending,
		StripeEventID: newEventID(), StripeCustomerID: "cus_" + token(), StripeInvoiceID: invoice,
		StripeSubscriptionID: "sub_" + token(), StripeChargeID: "ch_" + token(), StripePaymentMethodID: "card_" + token(),
		CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd",
		HostedInvoiceURL: "https://invoice.example/" + token(), InvoiceAttempt: attempt, DeclineCode: "generic_decline",
		RunAt: created.Add(time.Hour), CreatedAt: created, UpdatedAt: created,
	}
}

// canon makes a task comparable with ==-like equality whatever location
// the adapter returned its times in.
func canon(t domain.Task) domain.Task {
	t.RunAt, t.CreatedAt, t.UpdatedAt = t.RunAt.UTC(), t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t
}

func schedule(t *testing.T, st ports.Storage, m domain.MerchantID, tasks ...domain.Task) []domain.Task {
	t.Helper()
	stored, err := st.Tasks().Schedule(t.Context(), m, tasks)
	if err != nil {
		t.Fatalf("schedule: %v", err)
	}
	return stored
}

func mustGet(t *testing.T, st ports.Storage, m domain.MerchantID, id domain.TaskID) domain.Task {
	t.Helper()
	got, err := st.Tasks().Get(t.Context(), m, id)
	if err != nil {
		t.Fatalf("get task %s: %v", id, err)
	}
	return canon(got)
}

// listAll walks every page of the merchant's list (limit per page) and
// checks the paging itself: full pages until the last, whose Next is nil,
// and a Next that names each page's last task.
func listAll(t *testing.T, st ports.Storage, m domain.MerchantID, status domain.TaskStatus, limit int) []domain.Task {
	t.Helper()
	var all []domain.Task
	f := domain.TaskFilter{Status: status, Limit: limit}
	for range 100000 {
		page, err := st.Tasks().List(t.Context(), m, f)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		all = append(all, page.Tasks...)
		if page.Next == nil {
			return all
		}
		if len(page.Tasks) != limit {
			t.Fatalf("a page with a next cursor has %d tasks, want %d", len(page.Tasks), limit)
		}
		last := page.Tasks[len(page.Tasks)-1]
		if page.Next.ID != last.ID || !page.Next.CreatedAt.Equal(last.CreatedAt) {
			t.Fatalf("next cursor %+v does not name the page's last task %s %s", *page.Next, last.ID, last.CreatedAt)
		}
		f.After = page.Next
	}
	t.Fatalf("list never ended")
	return nil
}

// tasksOf is the tasks of claims.
func tasksOf(claims []ports.Claim) []domain.Task {
	out := make([]domain.Task, len(claims))
	for i, c := range claims {
		out[i] = c.Task
	}
	return out
}

func ids(tasks []domain.Task) []domain.TaskID {
	out := make([]domain.TaskID, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// newestFirst returns the ids of tasks in list order.
func newestFirst(tasks []domain.Task) []domain.TaskID {
	sorted := slices.Clone(tasks)
	slices.SortFunc(sorted, domain.NewerFirst)
	return ids(sorted)
}

// lockOnce runs a unit of work that only takes the event's lock and
// commits (or rolls back when rollback is set).
func lockOnce(ctx context.Context, st ports.Storage, eventID string, rollback bool) (bool, error) {
	var won bool
	err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		ok, err := tx.Events().AttemptEventLock(ctx, eventID)
		if err != nil {
			return err
		}
		won = ok
		if rollback {
			return errRollback
		}
		return nil
	})
	if rollback && errors.Is(err, errRollback) {
		err = nil
	}
	return won, err
}

// taskIn stores a new task of the merchant and brings it to status through
// the ports alone: claimed for running, claimed and finished for succeeded
// and failed, cancelled by invoice for cancelled. Tasks a case wants in
// other statuses must not be due at claimBase.
func taskIn(t *testing.T, st ports.Storage, m domain.MerchantID, status domain.TaskStatus) domain.Task {
	t.Helper()
	ctx := t.Context()
	task := newTask(m, domain.TypeRetryPayment, newInvoiceID(), 1, now())
	switch status {
	case domain.StatusPending:
		schedule(t, st, m, task)
	case domain.StatusCancelled:
		schedule(t, st, m, task)
		if _, err := st.Tasks().CancelPending(ctx, m, domain.CancelSelector{InvoiceID: task.StripeInvoiceID}, now()); err != nil {
			t.Fatalf("cancel: %v", err)
		}
	default:
		task.RunAt = claimBase.Add(-time.Minute)
		schedule(t, st, m, task)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if len(claimed) != 1 || claimed[0].ID != task.ID {
			t.Fatalf("claimed %v, want only %s", ids(tasksOf(claimed)), task.ID)
		}
		if status != domain.StatusRunning {
			res := domain.TaskResult{Status: status, At: now()}
			if status == domain.StatusFailed {
				res.LastError = "card_declined"
			}
			if err := st.Queue().Finish(ctx, m, task.ID, claimed[0].Attempts, res); err != nil {
				t.Fatalf("finish: %v", err)
			}
		}
	}
	got := mustGet(t, st, m, task.ID)
	if got.Status != status {
		t.Fatalf("task is %s, want %s", got.Status, status)
	}
	return got
}
