package domain_test

import (
	"errors"

	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func hours(h int) time.Duration { return time.Duration(h) * time.Hour }

// failedRecord is a record of an invoice that failed attempts Stripe
// attempts (the last at last) and recoup attempts of its own.
func failedRecord(stripe, recoup int, last time.Time, code string) domain.InvoiceRecord {
	return domain.InvoiceRecord{
		InvoiceID: "in_1", FirstFailedAt: t0, LastFailedAt: last,
		StripeAttempts: stripe, RecoupAttempts: recoup, DeclineCode: code, DeclinedAt: last,
	}
}

func TestPlan(t *testing.T) {
	p := domain.DefaultDunningPolicy() // [24 72 120 168], insufficient_funds [72 168 336], max 8, 30 days
	window := t0.Add(30 * 24 * time.Hour)
	retry := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	withRetryAt := func(r domain.InvoiceRecord, at time.Time) domain.InvoiceRecord { r.StripeRetryAt = &at; return r }
	closed := func(r domain.InvoiceRecord, status string) domain.InvoiceRecord { r.Status = status; return r }
	cardAt := func(r domain.InvoiceRecord, at time.Time) domain.InvoiceRecord { r.CardUpdatedAt = at; return r }
	shortInsufficient := p
	shortInsufficient.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {48}}
	noSchedule := p
	noSchedule.RetryDelaysHours = nil
	noSchedule.DelaysByDeclineCode = nil
	tight := p
	tight.MaxAttempts = 3

	cases := []struct {
		name   string
		policy domain.DunningPolicy
		record domain.InvoiceRecord
		want   domain.Step
	}{
		// Nothing to plan.
		{"no failure known", p, domain.InvoiceRecord{DeclineCode: "insufficient_funds", DeclinedAt: t0}, domain.Step{}},
		{"paid", p, closed(failedRecord(1, 0, t0, ""), domain.InvoicePaid), domain.Step{Reason: domain.ReasonPaid}},
		{"void", p, closed(failedRecord(1, 0, t0, ""), domain.InvoiceVoid), domain.Step{Reason: domain.ReasonVoided}},
		{"uncollectible", p, closed(failedRecord(1, 0, t0, ""), domain.InvoiceUncollectible), domain.Step{Reason: domain.ReasonUncollectible}},
		{"Stripe retries", p, withRetryAt(failedRecord(1, 0, t0, ""), t0.Add(72*time.Hour)), domain.Step{Reason: domain.ReasonStripeRetrying}},
		{"Stripe retries a hard decline", p, withRetryAt(failedRecord(1, 0, t0, "stolen_card"), t0.Add(72*time.Hour)), domain.Step{Reason: domain.ReasonStripeRetrying}},

		// The general schedule, attempt by attempt, from the last failure.
		{"attempt 1, no code", p, failedRecord(1, 0, t0, ""), domain.Step{RetryAt: t0.Add(hours(24))}},
		{"attempt 2 by Stripe", p, failedRecord(2, 0, t0.Add(hours(5)), ""), domain.Step{RetryAt: t0.Add(hours(5 + 72))}},
		{"attempt 2 by recoup", p, failedRecord(1, 1, t0.Add(hours(24)), "generic_decline"), domain.Step{RetryAt: t0.Add(hours(24 + 72))}},
		{"attempt 4", p, failedRecord(2, 2, retry, "do_not_honor"), domain.Step{RetryAt: retry.Add(hours(168))}},
		{"attempt 5: past the list", p, failedRecord(3, 2, retry, "generic_decline"), domain.Step{EndAt: retry, Reason: domain.ReasonNoSchedule}},
		{"empty schedule", noSchedule, failedRecord(1, 0, t0, ""), domain.Step{EndAt: t0, Reason: domain.ReasonNoSchedule}},

		// A decline code's own list overrides, where it reaches.
		{"insufficient funds, attempt 1", p, failedRecord(1, 0, t0, "insufficient_funds"), domain.Step{RetryAt: t0.Add(hours(72))}},
		{"insufficient funds, attempt 3", p, failedRecord(1, 2, t0.Add(hours(100)), "insufficient_funds"), domain.Step{RetryAt: t0.Add(hours(100 + 336))}},
		{"insufficient funds, attempt 4: its list is shorter, the general one goes on", p, failedRecord(1, 3, t0.Add(hours(100)), "insufficient_funds"),
			domain.Step{RetryAt: t0.Add(hours(100 + 168))}},
		{"short code list, attempt 2 falls back", shortInsufficient, failedRecord(2, 0, t0, "insufficient_funds"), domain.Step{RetryAt: t0.Add(hours(72))}},

		// Hard declines: no retry; dunning ends when the window does.
		{"stolen card", p, failedRecord(1, 0, t0, "stolen_card"), domain.Step{EndAt: window, Reason: domain.ReasonHardDecline}},
		{"expired card, attempt 3", p, failedRecord(2, 1, t0.Add(hours(30)), "expired_card"), domain.Step{EndAt: window, Reason: domain.ReasonHardDecline}},
		{"a code the merchant does not list is soft", p, failedRecord(1, 0, t0, "try_again_later"), domain.Step{RetryAt: t0.Add(hours(24))}},
		{"a card update after the decline retries at once", p, cardAt(failedRecord(1, 0, t0, "expired_card"), t0.Add(hours(3))),
			domain.Step{RetryAt: t0.Add(hours(3))}},
		{"a card update before a later hard decline does not lift it", p, cardAt(failedRecord(2, 0, t0.Add(hours(10)), "lost_card"), t0.Add(hours(3))),
			domain.Step{EndAt: window, Reason: domain.ReasonHardDecline}},
		{"a card update after a soft decline retries at once too", p, cardAt(failedRecord(1, 0, t0, "insufficient_funds"), t0.Add(hours(1))),
			domain.Step{RetryAt: t0.Add(hours(1))}},
		{"a card update past the window ends dunning", p, cardAt(failedRecord(1, 0, t0, "stolen_card"), window.Add(time.Hour)),
			domain.Step{EndAt: t0, Reason: domain.ReasonRetryWindow}},

		// One attempt budget: Stripe's and recoup's attempts together.
		{"budget: 7 of 8 leaves one", p, failedRecord(4, 3, t0.Add(hours(200)), "insufficient_funds"), domain.Step{EndAt: t0.Add(hours(200)), Reason: domain.ReasonNoSchedule}},
		{"budget: Stripe alone used it up", p, failedRecord(8, 0, t0.Add(hours(300)), ""), domain.Step{EndAt: t0.Add(hours(300)), Reason: domain.ReasonAttemptBudget}},
		{"budget: Stripe and recoup used it up", tight, failedRecord(2, 1, t0.Add(hours(30)), ""), domain.Step{EndAt: t0.Add(hours(30)), Reason: domain.ReasonAttemptBudget}},
		{"budget: one under", tight, failedRecord(1, 1, t0.Add(hours(30)), ""), domain.Step{RetryAt: t0.Add(hours(30 + 72))}},
		{"budget ends even a card update's retry", tight, cardAt(failedRecord(3, 0, t0, "expired_card"), t0.Add(hours(1))), domain.Step{EndAt: t0, Reason: domain.ReasonAttemptBudget}},

		// The window: no attempt later than 30 days after the first failure.
		{"window: a retry due exactly at its end", p, failedRecord(1, 0, window.Add(-hours(24)), ""), domain.Step{RetryAt: window}},
		{"window: a retry due a second after it", p, failedRecord(1, 0, window.Add(-hours(24)).Add(time.Second), ""),
			domain.Step{EndAt: window.Add(-hours(24)).Add(time.Second), Reason: domain.ReasonRetryWindow}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(c.policy.Plan(c.record), c.want)
		})
	}
}

// TestApplyOutOfOrder: the facts of one invoice, merged in every order,
// give one record, and so one plan.
func TestApplyOutOfOrder(t *testing.T) {
	next := t0.Add(hours(72))
	facts := []domain.InvoiceFact{
		{Kind: domain.FactFailed, InvoiceID: "in_1", CustomerID: "cus_1", Currency: "usd", AmountDue: 2000, At: t0, AttemptCount: 1, StripeRetryAt: &next},
		{Kind: domain.FactDeclined, InvoiceID: "in_1", DeclineCode: "insufficient_funds", At: t0},
		{Kind: domain.FactFailed, InvoiceID: "in_1", SubscriptionID: "sub_1", AmountDue: 2000, At: next, AttemptCount: 2},
		{Kind: domain.FactDeclined, InvoiceID: "in_1", DeclineCode: "expired_card", At: next},
	}
	var want domain.InvoiceRecord
	for _, f := range facts {
		want = want.Apply(f)
	}
	is := is.New(t)
	is.Equal(want.FirstFailedAt, t0)
	is.Equal(want.LastFailedAt, next)
	is.Equal(want.StripeAttempts, 2)
	is.True(want.StripeRetryAt == nil) // the latest attempt said Stripe stops
	is.Equal(want.DeclineCode, "expired_card")
	is.Equal(want.CustomerID, "cus_1")
	is.Equal(want.SubscriptionID, "sub_1")
	p := domain.DefaultDunningPolicy()
	is.Equal(p.Plan(want), domain.Step{EndAt: t0.Add(30 * 24 * time.Hour), Reason: domain.ReasonHardDecline})

	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		order := r.Perm(len(facts))
		var got domain.InvoiceRecord
		for _, i := range order {
			got = got.Apply(facts[i])
		}
		is.Equal(got, want)                 // whatever the order
		is.Equal(p.Plan(got), p.Plan(want)) // and so the plan
	}
}

func TestApplyPaid(t *testing.T) {
	failed := domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_1", Currency: "usd", AmountDue: 2000, At: t0, AttemptCount: 1}
	cases := []struct {
		name  string
		facts []domain.InvoiceFact
		want  domain.RecoverySource
	}{
		{"never failed: not a recovery", []domain.InvoiceFact{{Kind: domain.FactPaid, At: t0, Amount: 2000}}, ""},
		{"paid by the customer", []domain.InvoiceFact{failed, {Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 1, Amount: 2000}}, domain.RecoveredByCustomer},
		{"paid by Stripe's retry", []domain.InvoiceFact{failed, {Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 2, Amount: 2000}}, domain.RecoveredByStripeRetry},
		{"paid by recoup", []domain.InvoiceFact{failed, {Kind: domain.FactRecoupPaid, At: t0.Add(time.Hour)},
			{Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 1, Amount: 2000}}, domain.RecoveredByRecoupRetry},
		{"paid by recoup after a card update", []domain.InvoiceFact{failed, {Kind: domain.FactCardUpdated, At: t0.Add(time.Minute)},
			{Kind: domain.FactRecoupPaid, At: t0.Add(time.Hour)}, {Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 1, Amount: 2000}}, domain.RecoveredByCardUpdate},
		{"paid by recoup, the payment reported first", []domain.InvoiceFact{failed,
			{Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 2, Amount: 2000}, {Kind: domain.FactRecoupPaid, At: t0.Add(time.Hour)}},
			domain.RecoveredByRecoupRetry},
		{"paid by recoup after a card update, the payment reported first", []domain.InvoiceFact{failed,
			{Kind: domain.FactCardUpdated, At: t0.Add(time.Minute)}, {Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 1, Amount: 2000},
			{Kind: domain.FactRecoupPaid, At: t0.Add(time.Hour)}}, domain.RecoveredByCardUpdate},
		{"recoup's pay after a void is no recovery", []domain.InvoiceFact{failed, {Kind: domain.FactClosed, Status: domain.InvoiceVoid, At: t0.Add(time.Hour)},
			{Kind: domain.FactRecoupPaid, At: t0.Add(2 * time.Hour)}}, ""},
		{"paid after a card update", []domain.InvoiceFact{failed, {Kind: domain.FactCardUpdated, At: t0.Add(time.Minute)},
			{Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 2, Amount: 2000}}, domain.RecoveredByCardUpdate},
		{"the payment reported before the failure", []domain.InvoiceFact{{Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 1, Amount: 2000}, failed},
			domain.RecoveredByCustomer},
		{"paid twice counts once", []domain.InvoiceFact{failed, {Kind: domain.FactPaid, At: t0.Add(time.Hour), AttemptCount: 2, Amount: 2000},
			{Kind: domain.FactPaid, At: t0.Add(2 * time.Hour), AttemptCount: 1, Amount: 1}}, domain.RecoveredByStripeRetry},
		{"voided, then paid: not a recovery", []domain.InvoiceFact{failed, {Kind: domain.FactClosed, Status: domain.InvoiceVoid, At: t0.Add(time.Hour)},
			{Kind: domain.FactPaid, At: t0.Add(2 * time.Hour), Amount: 2000}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			var r domain.InvoiceRecord
			for _, f := range c.facts {
				r = r.Apply(f)
			}
			is.Equal(r.RecoveredBy, c.want)
			is.Equal(r.Recovered(), c.want != "")
		})
	}
}

func TestRecoupAttemptsCount(t *testing.T) {
	is := is.New(t)
	p := domain.DefaultDunningPolicy()
	r := domain.InvoiceRecord{}.Apply(domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_1", At: t0, AttemptCount: 1})
	is.Equal(p.Plan(r).RetryAt, t0.Add(hours(24)))
	declined := t0.Add(hours(24))
	r = r.Apply(domain.InvoiceFact{Kind: domain.FactRecoupDeclined, At: declined, DeclineCode: "insufficient_funds"})
	is.Equal(r.Attempts(), 2)                             // Stripe's one and recoup's one
	is.Equal(p.Plan(r).RetryAt, declined.Add(hours(168))) // insufficient_funds' second delay
	// Stripe's event of recoup's declined attempt keeps its attempt_count.
	r = r.Apply(domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_1", At: declined, AttemptCount: 1})
	is.Equal(r.Attempts(), 2) // not counted twice
}

func TestDunningPolicyValidate(t *testing.T) {
	is := is.New(t)
	is.NoErr(domain.DefaultDunningPolicy().Validate()) // the default is valid
	cases := []struct {
		field  string
		change func(p *domain.DunningPolicy)
	}{
		{"retry_delays_hours[1]", func(p *domain.DunningPolicy) { p.RetryDelaysHours = []int{24, 0} }},
		{"retry_delays_hours[0]", func(p *domain.DunningPolicy) { p.RetryDelaysHours = []int{1441} }},
		{"retry_delays_hours", func(p *domain.DunningPolicy) { p.RetryDelaysHours = make([]int, 13) }},
		{"delays_by_decline_code.Insufficient", func(p *domain.DunningPolicy) { p.DelaysByDeclineCode = map[string][]int{"Insufficient": {1}} }},
		{"delays_by_decline_code.x", func(p *domain.DunningPolicy) { p.DelaysByDeclineCode = map[string][]int{"x": {}} }},
		{"delays_by_decline_code.x[2]", func(p *domain.DunningPolicy) { p.DelaysByDeclineCode = map[string][]int{"x": {1, 2, -3}} }},
		{"hard_decline_codes[1]", func(p *domain.DunningPolicy) { p.HardDeclineCodes = []string{"stolen_card", "stolen card"} }},
		{"hard_decline_codes[2]", func(p *domain.DunningPolicy) { p.HardDeclineCodes = []string{"a", "b", "a"} }},
		{"hard_decline_codes[0]", func(p *domain.DunningPolicy) { p.HardDeclineCodes = []string{strings.Repeat("a", 65)} }},
		{"max_attempts", func(p *domain.DunningPolicy) { p.MaxAttempts = 0 }},
		{"max_attempts", func(p *domain.DunningPolicy) { p.MaxAttempts = 21 }},
		{"retry_window_days", func(p *domain.DunningPolicy) { p.RetryWindowDays = 0 }},
		{"retry_window_days", func(p *domain.DunningPolicy) { p.RetryWindowDays = 61 }},
		{"emails.reminder_hours[0]", func(p *domain.DunningPolicy) { p.Emails.ReminderHours = []int{0} }},
		{"max_emails_per_customer_per_week", func(p *domain.DunningPolicy) { p.MaxEmailsPerCustomerPerWeek = 0 }},
		{"on_exhausted", func(p *domain.DunningPolicy) { p.OnExhausted = "delete_customer" }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			is := is.New(t)
			p := domain.DefaultDunningPolicy()
			c.change(&p)
			err := p.Validate()
			is.True(errors.Is(err, domain.ErrInvalid)) // refused
			var pe *domain.PolicyError
			is.True(errors.As(err, &pe))
			is.Equal(pe.Field, c.field) // naming the field
		})
	}
	t.Run("limits are inclusive", func(t *testing.T) {
		is := is.New(t)
		p := domain.DefaultDunningPolicy()
		p.RetryDelaysHours = []int{1, 1440, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
		p.MaxAttempts, p.RetryWindowDays = 20, 60
		p.HardDeclineCodes = []string{strings.Repeat("z", 64)}
		p.RetryDelaysHours = append(p.RetryDelaysHours[:11], 1440)
		is.NoErr(p.Validate())
		p.MaxAttempts, p.RetryWindowDays = 1, 1
		is.NoErr(p.Validate())
		p.RetryDelaysHours = nil // no retries of recoup's own is a policy too
		is.NoErr(p.Validate())
	})

}
