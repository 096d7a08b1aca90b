package domain

import (
	"errors"
	"strings"
)

// PaymentErrorKind says what a failed call to the payment provider means for
// the task that made it: give up, count an attempt, or try again later.
type PaymentErrorKind string

// The kinds of payment errors.
const (
	// PaymentHardDecline: the card was refused in a way another attempt
	// cannot fix (stolen, lost, closed, fraudulent…). Fail the task at once;
	// more attempts only hurt the merchant's standing with the card networks.
	PaymentHardDecline PaymentErrorKind = "hard_decline"
	// PaymentSoftDecline: the card was refused for now (insufficient funds,
	// a generic decline…). It counts as an attempt; a later one may succeed.
	PaymentSoftDecline PaymentErrorKind = "soft_decline"
	// PaymentTransient: the provider could not be reached or was overloaded
	// (5xx, 429, timeout, connection error). Nothing was decided; back off
	// and try again.
	PaymentTransient PaymentErrorKind = "transient"
	// PaymentPermanent: the request itself cannot succeed (no API key, an
	// invalid request, an unknown invoice). Trying again changes nothing.
	PaymentPermanent PaymentErrorKind = "permanent"
)

// PaymentError is a failed call to the payment provider, classified so that
// the worker can decide what to do without knowing the provider.
type PaymentError struct {
	Kind PaymentErrorKind
	Code string // the provider's decline or error code, if any (stolen_card, rate_limit…)
	// Message is fit for a merchant to read: for a decline, the provider's
	// own message, which is written for the customer ("Your card has
	// insufficient funds."); otherwise a short description that names no
	// address or internal detail.
	Message string
	// Op is what was being done (read invoice in_1…), for the log.
	Op string
	// Err is the underlying cause, if any (a network error, context.Canceled,
	// ErrNotFound for an unknown invoice), for the log; errors.Is sees
	// through to it.
	Err error
}

// Error reads "pay invoice in_1: hard_decline (stolen_card): Your card was
// declined.", with the cause after it: the whole detail, for the log.
func (e *PaymentError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString(string(e.Kind))
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *PaymentError) Unwrap() error { return e.Err }

// MerchantMessage is what a merchant reads of the failure in a task's
// last_error: the decline code and the provider's message for a decline,
// "payment provider unreachable" when nothing was decided, and Message
// otherwise. It never holds the cause's detail.
func (e *PaymentError) MerchantMessage() string {
	switch e.Kind {
	case PaymentHardDecline, PaymentSoftDecline:
		msg := "card declined"
		if e.Code != "" {
			msg += " (" + e.Code + ")"
		}
		if e.Message != "" {
			msg += ": " + e.Message
		}
		return msg
	case PaymentTransient:
		return "payment provider unreachable"
	}
	if e.Message == "" {
		return "payment provider refused the request"
	}
	return e.Message
}

// PaymentErrorKindOf returns the kind of the first PaymentError in err's
// chain, and false if there is none.
func PaymentErrorKindOf(err error) (PaymentErrorKind, bool) {
	var pe *PaymentError
	if errors.As(err, &pe) {
		return pe.Kind, true
	}
	return "", false
}
