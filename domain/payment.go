package domain

import (
	"errors"
	"fmt"
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
	Kind    PaymentErrorKind
	Code    string // the provider's decline or error code, if any (stolen_card, rate_limit…)
	Message string // for people: it ends up in the task's last_error
	// Err is the underlying cause, if any (a network error, context.Canceled,
	// ErrNotFound for an unknown invoice); errors.Is sees through to it.
	Err error
}

// Error reads "hard_decline (stolen_card): Your card was declined.".
func (e *PaymentError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (%s): %s", e.Kind, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// Unwrap returns the cause.
func (e *PaymentError) Unwrap() error { return e.Err }

// PaymentErrorKindOf returns the kind of the first PaymentError in err's
// chain, and false if there is none.
func PaymentErrorKindOf(err error) (PaymentErrorKind, bool) {
	var pe *PaymentError
	if errors.As(err, &pe) {
		return pe.Kind, true
	}
	return "", false
}
