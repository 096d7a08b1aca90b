package domain

import "errors"

// The error model. Every port documents which of these it returns; adapters
// wrap them with context (fmt.Errorf("...: %w", ErrNotFound)) and the HTTP
// adapter maps them to statuses in one place.
var (
	// ErrNotFound: the thing asked for does not exist (for a task: not for
	// this merchant, see ErrForbidden).
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the task exists but belongs to another merchant.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: the request clashes with the current state (a task in the
	// wrong status, a Stripe account already bound).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed.
	ErrInvalid = errors.New("invalid input")
	// ErrUnavailable: storage or another dependency cannot be reached; the
	// caller may try again later.
	ErrUnavailable = errors.New("unavailable")
)
