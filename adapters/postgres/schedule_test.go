package postgres_test

import (
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// TestScheduleMeetingTasksInOneCall: tasks of one Schedule call that one
// rule matches against each other come out as they would one by one,
// though Schedule sends several tasks in one statement.
func TestScheduleMeetingTasksInOneCall(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	st := postgres.New(newSchemaDB(t, pgtest.NewDatabase(t), 4))
	m := createMerchant(t, st).ID
	const inv = "in_meeting"
	notify1 := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1)
	notify1again := newTask(m, domain.TypeNotifyPaymentFailed, inv, 1)
	retry1 := newTask(m, domain.TypeRetryPayment, inv, 1)
	retry2 := newTask(m, domain.TypeRetryPayment, inv, 2)
	retry2.RunAt = retry1.RunAt.Add(time.Hour)
	notify2 := newTask(m, domain.TypeNotifyPaymentFailed, inv, 2)

	stored, err := st.Tasks().Schedule(ctx, m, []domain.Task{notify1, notify1again, retry1, retry2, notify2})
	is.NoErr(err)
	ids := make([]domain.TaskID, 0, len(stored))
	for _, s := range stored {
		ids = append(ids, s.ID)
	}
	is.Equal(ids, []domain.TaskID{notify1.ID, retry1.ID, retry1.ID, notify2.ID}) // the second notify of attempt 1 is not stored; the retry of attempt 2 updates the first
	is.Equal(stored[1].InvoiceAttempt, 1)                                        // the first retry as inserted
	is.Equal(stored[2].InvoiceAttempt, 2)                                        // then as the later attempt left it
	is.True(stored[2].RunAt.Equal(retry2.RunAt))                                 // with the later schedule

	page, err := st.Tasks().List(ctx, m, domain.TaskFilter{Limit: 10})
	is.NoErr(err)
	is.Equal(len(page.Tasks), 3) // two notifies and one retry
}
