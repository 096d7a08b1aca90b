package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

// ErrUnauthenticated is what a MerchantResolver returns (wrapped) when a
// request carries no acceptable credentials; it is answered 401 with
// WWW-Authenticate: Bearer and the error's text as the message, for
// example fmt.Errorf("%w: session expired", ErrUnauthenticated) gives
// {"error": "Unauthorized: session expired"}.
var ErrUnauthenticated = errors.New("Unauthorized")

// forbiddenMessage is the whole body of every 403, fixed by the contract so that
// the answer reveals nothing about the task beyond its existence.
const forbiddenMessage = "Forbidden"

// invalid is a 400 whose message is msg.
func invalid(msg string) error { return weberr.WithMessage(domain.ErrInvalid, msg) }

// statusOf is the one mapping from errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	}
	if s := weberr.Status(err); s != 0 {
		return s
	}
	return http.StatusInternalServerError
}

// webhookStatusOf narrows statusOf for the webhook: Stripe only needs to
// know whether to redeliver, so anything but bad input (400) and an
// unreachable dependency (503) is a plain failure (500).
func webhookStatusOf(err error) int {
	switch s := statusOf(err); s {
	case http.StatusBadRequest, http.StatusServiceUnavailable:
		return s
	}
	return http.StatusInternalServerError
}

// messageOf is what the client is told for err answered with status.
func messageOf(err error, status int) string {
	switch status {
	case http.StatusForbidden:
		return forbiddenMessage
	case http.StatusServiceUnavailable:
		return "Service unavailable, try again later"
	}
	if status >= 500 {
		return "Internal server error"
	}
	if msg, ok := weberr.Message(err); ok {
		return msg
	}
	if status == http.StatusNotFound {
		return "Not found"
	}
	return err.Error()
}

// writeError answers err as {"error": "…"}. The internal text of a 5xx is
// logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := statusOf(err)
	if status >= 500 {
		log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.String("error", err.Error()))
	}
	writeErrorStatus(w, status, err)
}

// writeErrorStatus answers err with a status chosen by the caller, without
// logging (the caller has logged it, or it is not worth a line).
func writeErrorStatus(w http.ResponseWriter, status int, err error) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, status, errorBody{Error: messageOf(err, status)})
}

type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers v as JSON. Responses are never cached: some carry an
// API key, the others change with every event.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONBody answers body, which is JSON ending in a newline as
// json.Encoder writes it.
func writeJSONBody(w http.ResponseWriter, status int, body []byte) {
	writeJSONHeader(w, status)
	_, _ = w.Write(body)
}

func writeJSONHeader(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}
