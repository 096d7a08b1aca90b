package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Notification is one customer email a notify_* task sends, in the terms a
// template needs. The notifier renders it; nothing here knows SMTP.
type Notification struct {
	Type             TaskType // a notify_* type
	TaskID           TaskID
	Attempt          int    // the task attempt that sends it
	To               string // the customer's email address
	MerchantName     string
	Amount           int64 // minor units of Currency
	Currency         string
	HostedInvoiceURL string // empty when there is no invoice (a bare charge)
	InvoiceID        string
	ChargeID         string
	// NewCardNeeded: the payment was declined for good (a hard decline),
	// so the email asks for another card rather than a new try.
	NewCardNeeded bool
	// UpdateURL, when set, is the customer's link to update their payment
	// method (and pay): the email's one call to action, in place of the
	// hosted invoice.
	UpdateURL string
	// The card of a card_expiring email.
	CardBrand    string
	CardLast4    string
	CardExpMonth int
	CardExpYear  int
	// IdempotencyKey names this task attempt's email: a resend of the same
	// attempt carries the same key (and so the same Message-ID), which lets
	// a mail system or a reader recognise the repeat.
	IdempotencyKey string
}

// AttemptKey is the idempotency key of one task attempt: the same task and
// attempt always give the same key, another attempt another key.
func AttemptKey(id TaskID, attempt int) string {
	return fmt.Sprintf("recoup-%s-%d", id, attempt)
}

// RunKey is the idempotency key of one scheduled run of a task: the task id
// and the RunAt it was claimed for. A claim does not change RunAt, so a run
// that is reclaimed after its worker died (lease expired) repeats the same
// key and Stripe answers the repeat without charging again; every
// reschedule (backoff, a merchant's retry, a newer invoice attempt) sets a
// new RunAt and so a new key, which Stripe really tries.
func RunKey(t Task) string {
	return fmt.Sprintf("recoup-%s-%d", t.ID, t.RunAt.UnixMicro())
}

// IsNotification reports whether tasks of this type send a customer email.
func (t TaskType) IsNotification() bool {
	switch t {
	case TypeNotifyPaymentFailed, TypeNotifyActionRequired, TypeNotifyChargeFailed, TypeNotifyReminder, TypeNotifyCardExpiring:
		return true
	}
	return false
}

// MaskEmail is an email address as logs show it: its first character and
// its domain, "j***@example.com", so that a log line can be matched to a
// customer without holding the address. Text that is not an address
// becomes "***".
func MaskEmail(address string) string {
	local, host, ok := strings.Cut(address, "@")
	if !ok || local == "" || host == "" {
		if address == "" {
			return ""
		}
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + host
}
