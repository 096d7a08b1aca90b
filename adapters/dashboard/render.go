package dashboard

import (
	"bytes"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav names the section the page belongs to, for aria-current.
	Nav   string
	Flash string
	Error string
	Data  any
	// Set by render:
	Base     string
	Merchant domain.Merchant
	SignedIn bool
	SignOut  bool // the sign-out form (not with a Resolver)
	CSRF     string
}

// pages are the parsed templates, one set per page, each with the layout.
type pages map[string]*template.Template

var pageNames = []string{"signin", "overview", "tasks", "policy", "webhooks", "endpoint", "error"}

var funcs = template.FuncMap{
	"amount": domain.FormatAmount,
	"upper":  strings.ToUpper,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
}

func mustParsePages() pages {
	ps := pages{}
	for _, name := range pageNames {
		ps[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return ps
}

// render answers the page, rendered in full before anything is written so
// that a template error is a clean 500.
func (d *dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, p page, v ...visitor) {
	p.Base = d.base
	if len(v) > 0 && v[0].merchant.ID != "" {
		p.Merchant, p.SignedIn, p.SignOut, p.CSRF = v[0].merchant, true, d.cfg.Resolver == nil, v[0].csrf
	}
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		d.log.LogAttrs(r.Context(), slog.LevelError, "dashboard: render", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "Internal server error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// statusOf maps the use cases' errors to statuses, as the task API does.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errNotSignedIn):
		return http.StatusUnauthorized
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
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// shown is an error with the message the visitor is told, when the
// error's own text is not fit to show (it may name storage details).
type shown struct {
	msg string
	err error
}

func (e *shown) Error() string { return e.msg + ": " + e.err.Error() }
func (e *shown) Unwrap() error { return e.err }

func withMessage(err error, msg string) error { return &shown{msg: msg, err: err} }

// messageOf is what the visitor is told of err answered with status: the
// task API's text for 4xx, nothing of a 5xx's.
func messageOf(err error, status int) string {
	if s, ok := errors.AsType[*shown](err); ok && status < 500 {
		return s.msg
	}
	switch status {
	case http.StatusUnauthorized:
		return "You are not signed in."
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusRequestEntityTooLarge:
		return "The form is too large."
	case http.StatusNotFound:
		return "Not found"
	case http.StatusServiceUnavailable:
		return "Service unavailable, try again later."
	}
	if status >= 500 {
		return "Internal server error"
	}
	return err.Error()
}

// fail answers err as an error page; a 5xx is logged, never shown.
func (d *dashboard) fail(w http.ResponseWriter, r *http.Request, v visitor, err error) {
	status := statusOf(err)
	if status >= 500 {
		d.log.LogAttrs(r.Context(), slog.LevelError, "dashboard: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.String("error", err.Error()))
	}
	d.render(w, r, status, "error", page{Title: http.StatusText(status), Error: messageOf(err, status)}, v)
}

// flashes are the messages a redirect after a change shows, by the done
// parameter it carries: fixed texts, so that a link cannot make the page
// say anything else.
var flashes = map[string]string{
	"retried":          "Task retried: it is pending again.",
	"deleted":          "Task deleted.",
	"policy":           "Policy saved.",
	"endpoint-deleted": "Webhook endpoint deleted.",
	"signed-out":       "You are signed out.",
}

func flashOf(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }
