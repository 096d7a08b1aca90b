package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestPolicyServiceDefaultUntilSet(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	ctx := context.Background()
	other := e.addMerchant(t, "Other Shop", "acct_1Other")

	got, err := e.policies.Get(ctx, e.merchant)
	is.NoErr(err)
	is.Equal(got, domain.DefaultDunningPolicy()) // the default until the merchant sets one

	p := domain.DefaultDunningPolicy()
	p.RetryDelaysHours = []int{2, 12}
	p.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {48}, "do_not_honor": {6}}
	p.MaxAttempts, p.RetryWindowDays, p.OnExhausted = 4, 10, domain.ExhaustedCancelSubscription
	p.Emails.ReminderHours, p.Emails.CardExpiring = []int{24}, false
	stored, err := e.policies.Set(ctx, e.merchant, p)
	is.NoErr(err)
	is.Equal(stored, p) // answered as stored
	got, err = e.policies.Get(ctx, e.merchant)
	is.NoErr(err)
	is.Equal(got, p) // and read back whole

	got, err = e.policies.Get(ctx, other)
	is.NoErr(err)
	is.Equal(got, domain.DefaultDunningPolicy()) // another merchant keeps the default

	p.RetryDelaysHours[0] = 99 // the caller's copy is not the stored one
	got, err = e.policies.Get(ctx, e.merchant)
	is.NoErr(err)
	is.Equal(got.RetryDelaysHours, []int{2, 12})
}

func TestPolicyServiceRefusesInvalid(t *testing.T) {
	with := func(change func(p *domain.DunningPolicy)) domain.DunningPolicy {
		p := domain.DefaultDunningPolicy()
		change(&p)
		return p
	}
	thirteen := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	cases := []struct {
		name   string
		policy domain.DunningPolicy
		field  string
	}{
		{"a zero delay", with(func(p *domain.DunningPolicy) { p.RetryDelaysHours = []int{24, 0} }), "retry_delays_hours[1]"},
		{"a delay over 60 days", with(func(p *domain.DunningPolicy) { p.RetryDelaysHours = []int{1441} }), "retry_delays_hours[0]"},
		{"13 delays", with(func(p *domain.DunningPolicy) { p.RetryDelaysHours = thirteen }), "retry_delays_hours"},
		{"a decline code in capitals", with(func(p *domain.DunningPolicy) {
			p.DelaysByDeclineCode = map[string][]int{"Insufficient_Funds": {24}}
		}), "delays_by_decline_code.Insufficient_Funds"},
		{"a decline code without delays", with(func(p *domain.DunningPolicy) {
			p.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {}}
		}), "delays_by_decline_code.insufficient_funds"},
		{"a decline code's delay too long", with(func(p *domain.DunningPolicy) {
			p.DelaysByDeclineCode = map[string][]int{"insufficient_funds": {72, 2000}}
		}), "delays_by_decline_code.insufficient_funds[1]"},
		{"a hard decline code listed twice", with(func(p *domain.DunningPolicy) {
			p.HardDeclineCodes = []string{"stolen_card", "stolen_card"}
		}), "hard_decline_codes[1]"},
		{"a hard decline code with a space", with(func(p *domain.DunningPolicy) { p.HardDeclineCodes = []string{"stolen card"} }), "hard_decline_codes[0]"},
		{"no attempt", with(func(p *domain.DunningPolicy) { p.MaxAttempts = 0 }), "max_attempts"},
		{"more attempts than the card networks allow", with(func(p *domain.DunningPolicy) { p.MaxAttempts = 21 }), "max_attempts"},
		{"no retry window", with(func(p *domain.DunningPolicy) { p.RetryWindowDays = 0 }), "retry_window_days"},
		{"a window over 60 days", with(func(p *domain.DunningPolicy) { p.RetryWindowDays = 61 }), "retry_window_days"},
		{"a reminder at hour 0", with(func(p *domain.DunningPolicy) { p.Emails.ReminderHours = []int{0} }), "emails.reminder_hours[0]"},
		{"no email a week", with(func(p *domain.DunningPolicy) { p.MaxEmailsPerCustomerPerWeek = 0 }), "max_emails_per_customer_per_week"},
		{"an unknown end", with(func(p *domain.DunningPolicy) { p.OnExhausted = "refund" }), "on_exhausted"},
		{"no end", with(func(p *domain.DunningPolicy) { p.OnExhausted = "" }), "on_exhausted"},
		{"two bad fields: the first is named", with(func(p *domain.DunningPolicy) {
			p.MaxAttempts, p.OnExhausted = 0, "refund"
		}), "max_attempts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := newEngine(t)
			ctx := context.Background()
			before := quietPolicy()
			before.RetryDelaysHours = []int{5}
			e.setPolicy(t, e.merchant, before)

			_, err := e.policies.Set(ctx, e.merchant, tc.policy)
			is.True(errors.Is(err, domain.ErrInvalid)) // refused as invalid
			var pe *domain.PolicyError
			is.True(errors.As(err, &pe)) // with the field
			is.Equal(pe.Field, tc.field) // named
			is.True(pe.Problem != "")    // and what is wrong with it
			got, err := e.policies.Get(ctx, e.merchant)
			is.NoErr(err)
			is.Equal(got, before) // nothing changed

			e.handle(t, e.failure(e.merchant, "in_after_refusal", 1))
			retry := e.mustPending(t, e.merchant.ID, "in_after_refusal", domain.TypeRetryPayment)
			is.True(retry.RunAt.Equal(e.clock.Now().Add(5 * time.Hour))) // events still follow the stored policy
		})
	}
}

func TestPolicyUsedForLaterEventsAndRuns(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	ctx := context.Background()
	other := e.addMerchant(t, "Default Shop", "acct_1Default")
	t0 := e.clock.Now()

	p := quietPolicy()
	p.RetryDelaysHours = []int{2, 4}
	_, err := e.policies.Set(ctx, e.merchant, p)
	is.NoErr(err)

	res := e.handle(t, e.failure(e.merchant, "in_a", 1))
	is.Equal(res.Action, domain.ActionScheduled)
	mine := e.mustPending(t, e.merchant.ID, "in_a", domain.TypeRetryPayment)
	is.True(mine.RunAt.Equal(t0.Add(2 * time.Hour))) // the merchant's first delay
	e.handle(t, e.failure(other, "in_a", 1))         // the same invoice id at another merchant
	theirs := e.mustPending(t, other.ID, "in_a", domain.TypeRetryPayment)
	is.True(theirs.RunAt.Equal(t0.Add(24 * time.Hour))) // the default's

	// A new policy: one attempt only, so none is left for recoup.
	p.RetryDelaysHours, p.MaxAttempts = []int{10}, 1
	_, err = e.policies.Set(ctx, e.merchant, p)
	is.NoErr(err)
	again := e.mustPending(t, e.merchant.ID, "in_a", domain.TypeRetryPayment)
	is.Equal(again.ID, mine.ID)
	is.True(again.RunAt.Equal(mine.RunAt)) // a task already scheduled keeps its run_at

	e.handle(t, e.failure(e.merchant, "in_b", 1))
	_, ok := e.pendingOf(t, e.merchant.ID, "in_b", domain.TypeRetryPayment)
	is.True(!ok) // a later event follows the new policy: no attempt left
	end := e.mustPending(t, e.merchant.ID, "in_b", domain.TypeEndDunning)
	is.True(end.RunAt.Equal(t0)) // dunning ends at once

	e.advance(t, 2*time.Hour)
	ran := e.get(t, mine.ID)
	is.Equal(ran.Status, domain.StatusCancelled)     // the retry ran under the new policy
	is.Equal(ran.Reason, domain.ReasonAttemptBudget) // which leaves it no attempt
	is.Equal(len(e.gateway.payCalls()), 0)           // so nothing was charged
	ended := e.invoiceTasks(t, e.merchant.ID, "in_a", domain.TypeEndDunning)
	is.Equal(len(ended), 1) // and dunning ended
	is.Equal(ended[0].Status, domain.StatusSucceeded)
	is.Equal(e.mustPending(t, other.ID, "in_a", domain.TypeRetryPayment).ID, theirs.ID) // the other merchant's retry waits for its day
}
