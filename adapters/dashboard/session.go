package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// The cookies: the session's token, and the sign-in form's CSRF token
// (double submit, before there is a session).
const (
	sessionCookie = "recoup_session"
	signInCookie  = "recoup_signin"
	signInTTL     = time.Hour
	// maxAPIKeyLen bounds what is even looked at of a presented key.
	maxAPIKeyLen = 256
)

// cookie returns a cookie of the dashboard's path; a negative maxAge
// deletes it.
func (d *dashboard) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name: name, Value: value, Path: d.base, HttpOnly: true, Secure: d.cfg.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second),
	}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

type signInData struct {
	CSRF string
}

func (d *dashboard) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	d.renderSignIn(w, r, http.StatusOK, flashOf(r), "")
}

// renderSignIn shows the sign-in form with its CSRF token, set in its
// cookie too: the browser's token while it has one (so that two open
// sign-in pages both work), else a fresh one.
func (d *dashboard) renderSignIn(w http.ResponseWriter, r *http.Request, status int, flash, problem string) {
	token := domain.NewCSRFToken()
	if c, err := r.Cookie(signInCookie); err == nil && len(c.Value) == len(token) {
		token = c.Value
	}
	http.SetCookie(w, d.cookie(signInCookie, token, signInTTL))
	d.render(w, r, status, "signin", page{Title: "Sign in", Flash: flash, Error: problem, Data: signInData{CSRF: token}})
}

func (d *dashboard) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Limiter != nil {
		if wait, refused := d.cfg.Limiter.Refused(r); refused {
			secs := max(int((wait+time.Second-1)/time.Second), 1)
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			d.renderSignIn(w, r, http.StatusTooManyRequests, "",
				fmt.Sprintf("Too many failed sign-ins from this address; try again in %d s.", secs))
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		d.renderSignIn(w, r, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	c, err := r.Cookie(signInCookie)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), c.Value) {
		d.renderSignIn(w, r, http.StatusForbidden, "", "The sign-in form expired; please try again.")
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("api_key"))
	if len(key) > maxAPIKeyLen {
		key = ""
	}
	token, sess, err := d.cfg.Sessions.SignIn(r.Context(), key)
	if errors.Is(err, domain.ErrNotFound) {
		if d.cfg.Limiter != nil {
			d.cfg.Limiter.NoteFailure(r, d.log)
		}
		d.renderSignIn(w, r, http.StatusUnauthorized, "", "Sign-in failed: that API key is not valid.")
		return
	}
	if err != nil {
		d.fail(w, r, visitor{}, err)
		return
	}
	// A session the browser held before ends: one browser, one session.
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		if err := d.cfg.Sessions.SignOut(r.Context(), old.Value); err != nil {
			d.log.LogAttrs(r.Context(), slog.LevelWarn, "dashboard: end the previous session", slog.String("error", err.Error()))
		}
	}
	http.SetCookie(w, d.cookie(signInCookie, "", -1))
	http.SetCookie(w, d.cookie(sessionCookie, token, sess.ExpiresAt.Sub(sess.CreatedAt)))
	d.redirect(w, r, "/")
}

func (d *dashboard) handleSignOut(w http.ResponseWriter, r *http.Request, v visitor) {
	if err := d.cfg.Sessions.SignOut(r.Context(), v.session); err != nil {
		d.fail(w, r, v, err)
		return
	}
	http.SetCookie(w, d.cookie(sessionCookie, "", -1))
	d.redirect(w, r, "/signin?done=signed-out")
}
