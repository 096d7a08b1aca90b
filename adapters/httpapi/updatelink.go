package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
)

// maxLinkToken bounds what is looked at of an update link's token.
const maxLinkToken = 1024

// NewUpdateLinkHandler serves GET /update/{token}: a customer's update
// link, answered 303 to a Stripe customer portal session. A bad, tampered
// or expired link answers 404 with a plain page that says nothing more;
// Stripe unreachable, 503. The token is in the URL, so the answer keeps it
// out of caches and referrers.
func NewUpdateLinkHandler(links *app.UpdateLinkService, log *slog.Logger) http.Handler {
	log = orDiscard(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		token := r.PathValue("token")
		if len(token) > maxLinkToken {
			plainPage(w, http.StatusNotFound, linkNotFound)
			return
		}
		url, err := links.PortalURL(r.Context(), token)
		switch {
		case err == nil:
			http.Redirect(w, r, url, http.StatusSeeOther)
		case errors.Is(err, domain.ErrNotFound):
			plainPage(w, http.StatusNotFound, linkNotFound)
		default:
			log.LogAttrs(r.Context(), slog.LevelError, "update link", slog.String("error", err.Error()))
			plainPage(w, http.StatusServiceUnavailable, "We could not open the page right now. Please try again in a few minutes.")
		}
	})
}

const linkNotFound = "This link is not valid or has expired. Please use the link in your latest email, or contact the company that sent it."

// plainPage answers a short HTML page with msg.
func plainPage(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Payment details</title></head>" +
		"<body><p>" + msg + "</p></body></html>\n"))
}
