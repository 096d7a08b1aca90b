package domain

import "time"

// Reasons say how a task ended (Task.Reason), in one short machine word.
// An end_dunning that ran has the action it took as its reason: none,
// cancel_subscription or mark_uncollectible (ExhaustedAction).
const (
	// A task that did its work.
	ReasonSent          = "sent"          // an email went out
	ReasonPaid          = "paid"          // the invoice is paid (recoup's payment, or one it saw)
	ReasonVoided        = "voided"        // the invoice was voided
	ReasonUncollectible = "uncollectible" // the invoice was marked uncollectible
	ReasonDeclined      = "declined"      // recoup's payment attempt was declined
	ReasonError         = "error"         // it failed for another reason (see last_error)
	// Why a planned task was cancelled or no retry planned.
	ReasonSubscriptionDeleted = "subscription_deleted"
	ReasonSuperseded          = "superseded"      // a newer plan replaced it
	ReasonHardDecline         = "hard_decline"    // no retry until the payment method changes
	ReasonStripeRetrying      = "stripe_retrying" // Stripe retries on its own
	ReasonAttemptBudget       = "attempt_budget"  // max_attempts reached
	ReasonRetryWindow         = "retry_window"    // past retry_window_days
	ReasonNoSchedule          = "no_schedule"     // the schedule has no entry for the next attempt
	ReasonEmailCap            = "email_cap"       // max_emails_per_customer_per_week reached
	ReasonPolicyOff           = "policy_off"      // the policy turns this email off
	ReasonMerchant            = "merchant"        // the merchant retried or deleted it
)

// ClosedReason is the task reason of an invoice closed with status.
func ClosedReason(status string) string {
	switch status {
	case InvoicePaid:
		return ReasonPaid
	case InvoiceVoid:
		return ReasonVoided
	}
	return ReasonUncollectible
}

// Step is what recoup does next about a failed invoice.
type Step struct {
	// RetryAt, when set, is when recoup's next payment attempt is due.
	RetryAt time.Time
	// EndAt, when set, is when dunning ends: the end_dunning task is due.
	EndAt time.Time
	// Reason says why no retry is planned (a Reason… constant), when none
	// is.
	Reason string
}

// Plan decides from the invoice's record what recoup does next, by the
// policy:
//   - nothing for an invoice that is closed or that recoup's own attempt
//     paid, or whose failure is not known yet, or that Stripe retries on
//     its own;
//   - a retry at once after a change of payment method since the last
//     failure (which lifts a hard-decline block);
//   - no retry after a hard decline: dunning ends when the retry window
//     does, unless the payment method changes first;
//   - else a retry RetryDelays (or the decline code's own delays) after
//     the last failure, while the attempts (Stripe's and recoup's) stay
//     under MaxAttempts and the retry falls within the window after the
//     first failure; otherwise dunning ends at once.
//
// Plan is a function of the record alone, so that any order of the same
// facts plans the same.
func (p DunningPolicy) Plan(r InvoiceRecord) Step {
	switch {
	case r.Status != "":
		return Step{Reason: ClosedReason(r.Status)}
	case r.RecoupPaid != "":
		// recoup's own attempt paid it; Stripe's invoice.paid may still
		// be on its way.
		return Step{Reason: ReasonPaid}
	case !r.Failed():
		return Step{}
	case r.StripeRetryAt != nil:
		return Step{Reason: ReasonStripeRetrying}
	}
	n := max(r.Attempts(), 1)
	windowEnd := r.FirstFailedAt.Add(p.RetryWindow())
	ended := func(reason string) Step { return Step{EndAt: r.LastFailedAt, Reason: reason} }
	switch {
	case n >= p.MaxAttempts:
		return ended(ReasonAttemptBudget)
	case r.CardUpdatedAt.After(r.LastFailedAt):
		if r.CardUpdatedAt.After(windowEnd) {
			return ended(ReasonRetryWindow)
		}
		return Step{RetryAt: r.CardUpdatedAt}
	case p.HardDecline(r.DeclineCode) && !r.CardUpdatedAt.After(r.DeclinedAt):
		return Step{EndAt: windowEnd, Reason: ReasonHardDecline}
	}
	delay, ok := p.delayAfter(n, r.DeclineCode)
	if !ok {
		return ended(ReasonNoSchedule)
	}
	due := r.LastFailedAt.Add(delay)
	if due.After(windowEnd) {
		return ended(ReasonRetryWindow)
	}
	return Step{RetryAt: due}
}
