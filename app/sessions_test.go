package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
)

func TestSessions(t *testing.T) {
	is := is.New(t)
	u := newUseCases(t, nil)
	ctx := context.Background()
	m, key, err := u.merchants.Create(ctx, "Acme", "acct_sessions1")
	is.NoErr(err)
	sessions := app.NewSessionService(u.mem.Sessions(), u.merchants, u.clock, time.Hour)

	for _, bad := range []string{"", "rk_nope", key.Plain + "x"} {
		_, _, err := sessions.SignIn(ctx, bad)
		is.True(errors.Is(err, domain.ErrNotFound)) // any bad key is the same not-found
	}
	token, sess, err := sessions.SignIn(ctx, key.Plain)
	is.NoErr(err)
	is.Equal(sess.MerchantID, m.ID)
	is.Equal(sess.TokenHash, domain.HashSessionToken(token)) // stored under the hash only
	is.True(sess.ExpiresAt.Equal(u.clock.Now().Add(time.Hour)))
	is.True(sess.CSRFToken != "" && sess.CSRFToken != token)

	got, resumed, err := sessions.Resume(ctx, token)
	is.NoErr(err)
	is.Equal(got.ID, m.ID)                      // the session's merchant
	is.Equal(resumed.CSRFToken, sess.CSRFToken) // with its CSRF token
	_, _, err = sessions.Resume(ctx, token+"x")
	is.True(errors.Is(err, domain.ErrNotFound)) // another token is no session

	u.clock.Add(time.Hour)
	_, _, err = sessions.Resume(ctx, token)
	is.True(errors.Is(err, domain.ErrNotFound)) // expired

	u.clock.Add(time.Hour)
	second, _, err := sessions.SignIn(ctx, key.Plain)
	is.NoErr(err)
	n, err := u.mem.Sessions().PruneSessions(ctx, u.clock.Now(), 10)
	is.NoErr(err)
	is.Equal(n, 0) // the sign-in pruned the expired session already
	is.NoErr(sessions.SignOut(ctx, second))
	_, _, err = sessions.Resume(ctx, second)
	is.True(errors.Is(err, domain.ErrNotFound)) // signed out
	is.NoErr(sessions.SignOut(ctx, second))     // twice is fine

	_, issued, err := u.merchants.Create(ctx, "Other", "acct_sessions2")
	is.NoErr(err)
	third, _, err := sessions.SignIn(ctx, issued.Plain)
	is.NoErr(err)
	is.NoErr(u.merchants.RevokeKey(ctx, mustResume(t, sessions, third), issued.Prefix))
	_, _, err = sessions.SignIn(ctx, issued.Plain)
	is.True(errors.Is(err, domain.ErrNotFound)) // a revoked key signs in no more
}

func mustResume(t *testing.T, s *app.SessionService, token string) domain.MerchantID {
	t.Helper()
	m, _, err := s.Resume(context.Background(), token)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	return m.ID
}
