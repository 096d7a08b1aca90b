package postgres

import (
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestBunPlaceholders(t *testing.T) {
	cases := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"WHERE a = $1 AND b = $2", "WHERE a = ?0 AND b = ?1"},
		{"VALUES ($10::uuid, $2)", "VALUES (?9::uuid, ?1)"},
		{"LIMIT $3", "LIMIT ?2"},
		{"SELECT '$' || $1", "SELECT '$' || ?0"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			is := is.New(t)
			is.Equal(bunPlaceholders(c.in), c.want) // $n becomes ?(n-1)
		})
	}
}

func TestScheduleBatches(t *testing.T) {
	m := domain.MerchantID(domain.NewID())
	task := func(typ domain.TaskType, status domain.TaskStatus, invoice string, attempt int) domain.Task {
		return domain.Task{ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: typ, Status: status,
			StripeInvoiceID: invoice, InvoiceAttempt: attempt}
	}
	notify1 := task(domain.TypeNotifyPaymentFailed, domain.StatusPending, "in_1", 1)
	notify1again := task(domain.TypeNotifyPaymentFailed, domain.StatusPending, "in_1", 1)
	notify2 := task(domain.TypeNotifyPaymentFailed, domain.StatusPending, "in_1", 2)
	retry1 := task(domain.TypeRetryPayment, domain.StatusPending, "in_1", 1)
	retry2 := task(domain.TypeRetryPayment, domain.StatusPending, "in_1", 2)
	failedRetry := task(domain.TypeRetryPayment, domain.StatusFailed, "in_1", 1)
	otherInvoice := task(domain.TypeRetryPayment, domain.StatusPending, "in_2", 1)
	action := task(domain.TypeNotifyActionRequired, domain.StatusPending, "in_1", 1)

	many := make([]domain.Task, maxScheduleBatch+1)
	for i := range many {
		many[i] = task(domain.TypeNotifyChargeFailed, domain.StatusPending, "", 0)
	}

	cases := []struct {
		name  string
		tasks []domain.Task
		sizes []int
	}{
		{"none", nil, nil},
		{"the webhook's notify and retry", []domain.Task{notify1, retry1}, []int{2}},
		{"rules that cannot meet", []domain.Task{notify1, notify2, retry1, otherInvoice, failedRetry, action}, []int{6}},
		{"one notify per invoice and attempt", []domain.Task{notify1, retry1, notify1again}, []int{2, 1}},
		{"one pending retry per invoice", []domain.Task{retry1, notify1, retry2, notify2}, []int{2, 2}},
		{"the same id twice", []domain.Task{action, action}, []int{1, 1}},
		{"a bounded statement", many, []int{maxScheduleBatch, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			var sizes []int
			var again []domain.Task
			for _, b := range scheduleBatches(c.tasks) {
				sizes = append(sizes, len(b))
				again = append(again, b...)
			}
			is.Equal(sizes, c.sizes) // the tasks split where two of them could meet
			is.Equal(again, c.tasks) // in their order, every one once
		})
	}
}
