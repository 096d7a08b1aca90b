// Package dashboard is the merchant dashboard: server-rendered pages
// (html/template, no JavaScript) over the same use cases as the task API,
// where a merchant sees its recovery figures, its tasks (retrying and
// deleting them), its dunning policy and its outbound webhook endpoints.
//
// # Signing in
//
// Standalone, a merchant signs in with one of its API keys, exchanged for
// a session (app.SessionService). The sessions are stored, by both
// storage adapters, rather than signed into the cookie: signing out
// deletes the session, so the cookie stops working at once on every
// process, which a signed cookie could only do with a revocation list of
// its own. The cookie holds a random 32-byte token and storage only its
// SHA-256; it is HttpOnly, SameSite=Strict, limited to the dashboard's
// path, Secure when the deployment's public URL is https, and expires with
// the session. Sign-in failures share the API's AuthLimiter allowance.
//
// Embedded with a Resolver of the embedder's own, there are no sign-in
// and sign-out pages: every request is resolved to a merchant by it.
//
// # CSRF
//
// Every form that changes something carries a hidden csrf field, compared
// in constant time with the visitor's token; a missing or wrong one is a
// 403 and changes nothing. A session's token is random and stored with
// it. With a Resolver there is no session of ours, so the token is an
// HMAC of the merchant's id under Config.CSRFKey: a cross-site page cannot
// compute it. The sign-in form, which precedes any session, carries a
// random token that a SameSite=Strict cookie holds too (double submit).
package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/dashboard.css
var stylesheet []byte

//go:embed assets/favicon.svg
var favicon []byte

// Resolver decides which merchant a request acts for, as the task API's
// MerchantResolver does (any of those is one). An error wrapping
// domain.ErrUnavailable is a 503, domain.ErrForbidden a 403, and any other
// a 401 page.
type Resolver interface {
	// ResolveMerchant returns the merchant r acts for, or an error as
	// above.
	ResolveMerchant(r *http.Request) (domain.Merchant, error)
}

// Limiter slows down the guessing of API keys at sign-in; the task API's
// AuthLimiter is one, so that both share an allowance.
type Limiter interface {
	// Refused reports whether the request's client is over its allowance,
	// and how long until it may try again.
	Refused(r *http.Request) (time.Duration, bool)
	// NoteFailure counts a failed sign-in of the request's client.
	NoteFailure(r *http.Request, log *slog.Logger)
}

// Cursors issues and checks the cursors of the task list and of an
// endpoint's deliveries; the task API's Cursors with the same key is one,
// so that the dashboard's paging means what the API's does.
type Cursors interface {
	// EncodeTask returns the task list cursor of position p for merchant.
	EncodeTask(p domain.TaskCursor, merchant domain.MerchantID) (string, error)
	// DecodeTask checks a task list cursor given by merchant; an error
	// for anything not issued to it.
	DecodeTask(s string, merchant domain.MerchantID) (domain.TaskCursor, error)
	// EncodeDelivery returns the cursor of position p in the endpoint's
	// deliveries, for merchant.
	EncodeDelivery(p domain.DeliveryCursor, merchant domain.MerchantID, endpoint domain.EndpointID) (string, error)
	// DecodeDelivery checks a deliveries cursor given by merchant for the
	// endpoint; an error for anything not issued so.
	DecodeDelivery(s string, merchant domain.MerchantID, endpoint domain.EndpointID) (domain.DeliveryCursor, error)
}

// Config is what New needs.
type Config struct {
	Tasks     *app.TaskService     // required
	Policies  *app.PolicyService   // required
	Endpoints *app.EndpointService // required
	Cursors   Cursors              // required
	// Sessions signs merchants in with an API key; required unless
	// Resolver is set, and unused then.
	Sessions *app.SessionService
	// Resolver, when set, decides the merchant of every request instead
	// of the sign-in: there are no sign-in and sign-out pages then.
	Resolver Resolver
	// CSRFKey keys the CSRF tokens of a Resolver's merchants; required
	// with a Resolver. Every process serving the same browsers needs the
	// same key.
	CSRFKey []byte
	// Limiter, when set, refuses clients that fail to sign in too often.
	Limiter Limiter
	// BasePath is where the browser sees the dashboard: "/dashboard" on
	// its own, "/billing/dashboard" under a prefix. Links, redirects and
	// the cookie's Path use it; empty is "/dashboard".
	BasePath string
	// SecureCookies marks the cookies Secure (the deployment is served
	// over https).
	SecureCookies bool
	// Wake, when set, is called after a task is retried, so that the
	// worker runs it now rather than at its next poll.
	Wake func()
	// Logger receives failed requests (5xx) and, at debug level, the
	// requests a Resolver refused; nil discards.
	Logger *slog.Logger
}

// RoutePath is the path the handler routes on: it answers requests for
// RoutePath and below, whatever Config.BasePath says the browser sees.
const RoutePath = "/dashboard"

// Security headers of every answer. The pages load nothing but their own
// stylesheet, run no script, and cannot be framed.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBody bounds what a form may post.
const maxFormBody = 64 << 10

type dashboard struct {
	cfg   Config
	base  string
	log   *slog.Logger
	pages pages
}

// New returns the dashboard's handler, routing on RoutePath (see Config
// for where links point). It panics if a required dependency is missing: a
// wiring mistake, found at start.
func New(cfg Config) http.Handler {
	if cfg.Tasks == nil || cfg.Policies == nil || cfg.Endpoints == nil || cfg.Cursors == nil {
		panic("dashboard: New needs Tasks, Policies, Endpoints and Cursors")
	}
	if cfg.Resolver == nil && cfg.Sessions == nil {
		panic("dashboard: New needs Sessions, or a Resolver")
	}
	if cfg.Resolver != nil && len(cfg.CSRFKey) == 0 {
		panic("dashboard: a Resolver needs a CSRFKey")
	}
	d := &dashboard{cfg: cfg, base: cfg.BasePath, log: cfg.Logger, pages: mustParsePages()}
	if d.base == "" {
		d.base = RoutePath
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	d.routes(mux)
	return securityHeaders(mux)
}

func (d *dashboard) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+RoutePath+"/assets/dashboard.css", serveAsset("text/css; charset=utf-8", stylesheet))
	mux.HandleFunc("GET "+RoutePath+"/assets/favicon.svg", serveAsset("image/svg+xml", favicon))
	mux.HandleFunc(RoutePath, func(w http.ResponseWriter, r *http.Request) { d.redirect(w, r, "/") })
	if d.cfg.Resolver == nil {
		mux.HandleFunc("GET "+RoutePath+"/signin", d.handleSignInPage)
		mux.HandleFunc("POST "+RoutePath+"/signin", d.handleSignIn)
		mux.Handle("POST "+RoutePath+"/signout", d.signedIn(d.handleSignOut))
	}
	mux.Handle("GET "+RoutePath+"/{$}", d.signedIn(d.handleOverview))
	mux.Handle("GET "+RoutePath+"/tasks", d.signedIn(d.handleTasks))
	mux.Handle("POST "+RoutePath+"/tasks/{id}/retry", d.signedIn(d.handleRetry))
	mux.Handle("POST "+RoutePath+"/tasks/{id}/delete", d.signedIn(d.handleDelete))
	mux.Handle("GET "+RoutePath+"/policy", d.signedIn(d.handlePolicy))
	mux.Handle("POST "+RoutePath+"/policy", d.signedIn(d.handleSetPolicy))
	mux.Handle("GET "+RoutePath+"/webhooks", d.signedIn(d.handleEndpoints))
	mux.Handle("POST "+RoutePath+"/webhooks", d.signedIn(d.handleCreateEndpoint))
	mux.Handle("GET "+RoutePath+"/webhooks/{id}", d.signedIn(d.handleDeliveries))
	mux.Handle("POST "+RoutePath+"/webhooks/{id}/delete", d.signedIn(d.handleDeleteEndpoint))
	mux.Handle(RoutePath+"/", d.signedIn(func(w http.ResponseWriter, r *http.Request, v visitor) {
		d.fail(w, r, v, fmt.Errorf("%w: no such page", domain.ErrNotFound))
	}))
}

// securityHeaders sets the headers of every answer: pages, redirects and
// the stylesheet alike.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func serveAsset(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	}
}

// redirect answers 303 to path below the dashboard ("/" is the overview).
func (d *dashboard) redirect(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, d.base+path, http.StatusSeeOther)
}

// visitor is who a signed-in page is for.
type visitor struct {
	merchant domain.Merchant
	csrf     string
	// session is the cookie's token; empty with a Resolver.
	session string
}

// handlerFor is a page that needs a merchant.
type handlerFor func(w http.ResponseWriter, r *http.Request, v visitor)

// signedIn runs h for the request's merchant. Without one, it sends the
// browser to the sign-in page (or, with a Resolver, answers 401). A POST's
// form is read here, and its csrf field checked, before h runs.
func (d *dashboard) signedIn(h handlerFor) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := d.visitor(w, r)
		if !ok {
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				if _, tooLarge := errors.AsType[*http.MaxBytesError](err); !tooLarge {
					err = weberr.WithMessage(domain.ErrInvalid, "The form could not be read.")
				}
				d.fail(w, r, v, err)
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), v.csrf) {
				d.fail(w, r, v, weberr.WithMessage(domain.ErrForbidden, "Forbidden: the form's security token is missing or wrong; reload the page and try again."))
				return
			}
		}
		h(w, r, v)
	})
}

// visitor finds the request's merchant; when there is none it has
// answered, and returns false.
func (d *dashboard) visitor(w http.ResponseWriter, r *http.Request) (visitor, bool) {
	if d.cfg.Resolver != nil {
		m, err := d.cfg.Resolver.ResolveMerchant(r)
		if err == nil && m.ID == "" {
			err = errors.New("merchant resolver returned no merchant")
		}
		if err != nil {
			if !errors.Is(err, domain.ErrUnavailable) && !errors.Is(err, domain.ErrForbidden) {
				d.log.LogAttrs(r.Context(), slog.LevelDebug, "dashboard: request not resolved to a merchant", slog.String("error", err.Error()))
				err = errNotSignedIn
			}
			d.fail(w, r, visitor{}, err)
			return visitor{}, false
		}
		return visitor{merchant: m, csrf: d.merchantCSRF(m.ID)}, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		d.redirect(w, r, "/signin")
		return visitor{}, false
	}
	m, sess, err := d.cfg.Sessions.Resume(r.Context(), c.Value)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		http.SetCookie(w, d.cookie(sessionCookie, "", -1))
		d.redirect(w, r, "/signin")
		return visitor{}, false
	case err != nil:
		d.fail(w, r, visitor{}, err)
		return visitor{}, false
	}
	return visitor{merchant: m, csrf: sess.CSRFToken, session: c.Value}, true
}

// errNotSignedIn is the 401 of a request no Resolver accepted.
var errNotSignedIn = errors.New("not signed in")

// merchantCSRF is the CSRF token of a Resolver's merchant.
func (d *dashboard) merchantCSRF(m domain.MerchantID) string {
	mac := hmac.New(sha256.New, d.cfg.CSRFKey)
	mac.Write([]byte("recoup dashboard csrf v1\x00"))
	mac.Write([]byte(m))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sameToken compares a presented token with the expected one in constant
// time; an empty one never matches.
func sameToken(presented, want string) bool {
	if presented == "" || want == "" {
		return false
	}
	p, w := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(p[:], w[:]) == 1
}
