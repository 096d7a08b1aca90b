// Package weberr is what recoup's two HTTP adapters, the API (httpapi)
// and the dashboard, share of answering errors: the status of each of the
// use cases' errors, and the client-facing message an error may carry
// when its own text is not fit to show (it may name storage details).
package weberr

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/recoupdev/recoup/domain"
)

// Status is the HTTP status of one of the use cases' errors (the domain's
// sentinels), or 0 when err is none of them: the adapter then decides,
// from its own errors, or 500.
func Status(err error) int {
	switch {
	case errors.Is(err, domain.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, domain.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, domain.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, domain.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return 0
}

// public is an error with the message a client is told.
type public struct {
	msg string
	err error
}

func (e *public) Error() string { return e.msg + ": " + e.err.Error() }
func (e *public) Unwrap() error { return e.err }

// WithMessage makes msg the client-facing text of err (shown for 4xx
// answers; a 5xx never shows anything but a generic message). A nil err
// stays nil.
func WithMessage(err error, msg string) error {
	if err == nil {
		return nil
	}
	return &public{msg: msg, err: err}
}

// Message is the client-facing text WithMessage gave err, if any.
func Message(err error) (string, bool) {
	if p, ok := errors.AsType[*public](err); ok {
		return p.msg, true
	}
	return "", false
}

// What a 409 of a task's retry or delete says.
const (
	RetryConflict  = "only a failed or cancelled task can be retried, and only while its invoice has no other retry pending"
	DeleteConflict = "a running task cannot be deleted"
)

// ExplainTask gives a task use case's 404 and 409 a message of the
// adapter's own; conflict says what the 409 was about.
func ExplainTask(err error, id domain.TaskID, conflict string) error {
	switch Status(err) {
	case http.StatusNotFound:
		return WithMessage(err, fmt.Sprintf("task %s not found", id))
	case http.StatusConflict:
		return WithMessage(err, fmt.Sprintf("task %s: %s", id, conflict))
	}
	return err
}

// ExplainEndpoint gives an endpoint use case's 404 and 409 a message of
// the adapter's own.
func ExplainEndpoint(err error, id domain.EndpointID) error {
	switch Status(err) {
	case http.StatusNotFound:
		return WithMessage(err, fmt.Sprintf("webhook endpoint %s not found", id))
	case http.StatusConflict:
		if errors.Is(err, domain.ErrKeyReused) {
			return WithMessage(err, "this idempotency key already created an endpoint with another url or other events")
		}
		return WithMessage(err, fmt.Sprintf("a merchant has at most %d webhook endpoints", domain.MaxEndpointsPerShop))
	}
	return err
}
