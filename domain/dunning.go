package domain

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// ExhaustedAction is what recoup does on Stripe when an invoice's dunning
// ends with no payment attempt left.
type ExhaustedAction string

// The actions of DunningPolicy.OnExhausted.
const (
	// ExhaustedNone does nothing on Stripe; the end is recorded.
	ExhaustedNone ExhaustedAction = "none"
	// ExhaustedCancelSubscription cancels the invoice's subscription.
	ExhaustedCancelSubscription ExhaustedAction = "cancel_subscription"
	// ExhaustedMarkUncollectible marks the invoice uncollectible.
	ExhaustedMarkUncollectible ExhaustedAction = "mark_uncollectible"
)

// ExhaustedActions are every ExhaustedAction, in the order a form offers
// them.
var ExhaustedActions = []ExhaustedAction{ExhaustedNone, ExhaustedCancelSubscription, ExhaustedMarkUncollectible}

// EmailPolicy says which customer emails a merchant sends.
type EmailPolicy struct {
	PaymentFailed  bool
	ActionRequired bool
	ChargeFailed   bool
	CardExpiring   bool
	// ReminderHours are reminders of an unpaid failed invoice, each so
	// many hours after its first failure.
	ReminderHours []int
}

// DunningPolicy is one merchant's dunning policy: when recoup retries a
// failed payment, which declines it never retries, how many attempts an
// invoice gets in all, which emails go out, and how dunning ends. Its
// fields are those of the policy's JSON (retry_delays_hours, …).
type DunningPolicy struct {
	// RetryDelaysHours[n-1] is how long after failed attempt n recoup's
	// next attempt is due; attempts past the list get none.
	RetryDelaysHours []int
	// DelaysByDeclineCode replaces RetryDelaysHours for failures with that
	// decline code, for the attempts its list reaches.
	DelaysByDeclineCode map[string][]int
	// HardDeclineCodes are declines no retry can turn into a payment:
	// recoup makes no further attempt until the payment method changes.
	HardDeclineCodes []string
	// MaxAttempts caps an invoice's attempts, Stripe's and recoup's
	// together (the card networks penalise more).
	MaxAttempts int
	// RetryWindowDays: no attempt later than this after the first failure.
	RetryWindowDays int
	Emails          EmailPolicy
	// MaxEmailsPerCustomerPerWeek caps the emails one customer gets from
	// one merchant in any 7 days, every type together.
	MaxEmailsPerCustomerPerWeek int
	OnExhausted                 ExhaustedAction
}

// DefaultDunningPolicy is the policy of a merchant that set none. Its
// schedule is recoup's first one: retries 1, 3, 5 and 7 days after failed
// attempts 1 to 4.
func DefaultDunningPolicy() DunningPolicy {
	return DunningPolicy{
		RetryDelaysHours:    []int{24, 72, 120, 168},
		DelaysByDeclineCode: map[string][]int{"insufficient_funds": {72, 168, 336}},
		HardDeclineCodes: []string{"stolen_card", "lost_card", "pickup_card", "fraudulent",
			"restricted_card", "merchant_blacklist", "invalid_account", "card_not_supported",
			"currency_not_supported", "do_not_try_again", "revocation_of_authorization",
			"revocation_of_all_authorizations", "security_violation", "stop_payment_order",
			"transaction_not_allowed", "expired_card", "incorrect_number", "invalid_number"},
		MaxAttempts:     8,
		RetryWindowDays: 30,
		Emails: EmailPolicy{PaymentFailed: true, ActionRequired: true, ChargeFailed: true,
			CardExpiring: true, ReminderHours: []int{72, 168}},
		MaxEmailsPerCustomerPerWeek: 3,
		OnExhausted:                 ExhaustedNone,
	}
}

// Limits of a DunningPolicy.
const (
	MinDelayHours       = 1
	MaxDelayHours       = 1440 // 60 days
	MaxDelays           = 12   // per list
	MaxDeclineCodeLists = 50
	MaxHardDeclineCodes = 100
	MaxAttemptsLimit    = 20 // the card networks penalise more
	MaxRetryWindowDays  = 60
	MaxEmailsPerWeek    = 50
)

// PolicyError names the first field of a policy that breaks a limit, by
// its JSON name. It is ErrInvalid.
type PolicyError struct {
	Field   string // retry_delays_hours[2], delays_by_decline_code.insufficient_funds, …
	Problem string
}

// Error reads "retry_delays_hours[2]: must be 1 to 1440 hours".
func (e *PolicyError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap makes a PolicyError an ErrInvalid.
func (e *PolicyError) Unwrap() error { return ErrInvalid }

// Validate returns a *PolicyError for the first field outside its limits,
// in the order of the policy's JSON.
func (p DunningPolicy) Validate() error {
	if err := checkDelays("retry_delays_hours", p.RetryDelaysHours); err != nil {
		return err
	}
	if len(p.DelaysByDeclineCode) > MaxDeclineCodeLists {
		return &PolicyError{"delays_by_decline_code", fmt.Sprintf("at most %d decline codes", MaxDeclineCodeLists)}
	}
	for _, code := range slices.Sorted(maps.Keys(p.DelaysByDeclineCode)) {
		field := "delays_by_decline_code." + code
		if !ValidDeclineCode(code) {
			return &PolicyError{field, "a decline code is 1 to 64 of a-z, 0-9 and _"}
		}
		if len(p.DelaysByDeclineCode[code]) == 0 {
			return &PolicyError{field, "must list at least one delay"}
		}
		if err := checkDelays(field, p.DelaysByDeclineCode[code]); err != nil {
			return err
		}
	}
	if len(p.HardDeclineCodes) > MaxHardDeclineCodes {
		return &PolicyError{"hard_decline_codes", fmt.Sprintf("at most %d codes", MaxHardDeclineCodes)}
	}
	for i, code := range p.HardDeclineCodes {
		field := fmt.Sprintf("hard_decline_codes[%d]", i)
		if !ValidDeclineCode(code) {
			return &PolicyError{field, "a decline code is 1 to 64 of a-z, 0-9 and _"}
		}
		if slices.Contains(p.HardDeclineCodes[:i], code) {
			return &PolicyError{field, fmt.Sprintf("%s is listed twice", code)}
		}
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsLimit {
		return &PolicyError{"max_attempts", fmt.Sprintf("must be 1 to %d (the card networks penalise more attempts)", MaxAttemptsLimit)}
	}
	if p.RetryWindowDays < 1 || p.RetryWindowDays > MaxRetryWindowDays {
		return &PolicyError{"retry_window_days", fmt.Sprintf("must be 1 to %d days", MaxRetryWindowDays)}
	}
	if err := checkDelays("emails.reminder_hours", p.Emails.ReminderHours); err != nil {
		return err
	}
	if p.MaxEmailsPerCustomerPerWeek < 1 || p.MaxEmailsPerCustomerPerWeek > MaxEmailsPerWeek {
		return &PolicyError{"max_emails_per_customer_per_week", fmt.Sprintf("must be 1 to %d", MaxEmailsPerWeek)}
	}
	if !slices.Contains(ExhaustedActions, p.OnExhausted) {
		return &PolicyError{"on_exhausted", "must be none, cancel_subscription or mark_uncollectible"}
	}
	return nil
}

func checkDelays(field string, hours []int) error {
	if len(hours) > MaxDelays {
		return &PolicyError{field, fmt.Sprintf("at most %d delays", MaxDelays)}
	}
	for i, h := range hours {
		if h < MinDelayHours || h > MaxDelayHours {
			return &PolicyError{fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("must be %d to %d hours", MinDelayHours, MaxDelayHours)}
		}
	}
	return nil
}

// ValidDeclineCode reports whether code is 1 to 64 of a-z, 0-9 and _, as
// Stripe's decline codes are.
func ValidDeclineCode(code string) bool {
	if len(code) < 1 || len(code) > 64 {
		return false
	}
	for i := range len(code) {
		if c := code[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// HardDecline reports whether the policy counts code as a hard decline.
func (p DunningPolicy) HardDecline(code string) bool {
	return code != "" && slices.Contains(p.HardDeclineCodes, code)
}

// delayAfter is the delay after failed attempt n (1-based) of a payment
// declined with code: the code's own list when it reaches n, else the
// general one; false when neither has an entry.
func (p DunningPolicy) delayAfter(n int, code string) (time.Duration, bool) {
	if n < 1 {
		return 0, false
	}
	if list, ok := p.DelaysByDeclineCode[code]; ok && code != "" && n <= len(list) {
		return time.Duration(list[n-1]) * time.Hour, true
	}
	if n <= len(p.RetryDelaysHours) {
		return time.Duration(p.RetryDelaysHours[n-1]) * time.Hour, true
	}
	return 0, false
}

// RetryWindow is RetryWindowDays as a duration.
func (p DunningPolicy) RetryWindow() time.Duration {
	return time.Duration(p.RetryWindowDays) * 24 * time.Hour
}
