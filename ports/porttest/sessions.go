package porttest

import (
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunSessionsContract checks the dashboard's sessions: each found only
// under its own hash, not once expired or deleted, and pruned in batches.
// The cases date their sessions in 2001 so that pruning touches no other
// case's sessions on a shared database.
func RunSessionsContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	at := claimBase
	newSession := func(m domain.MerchantID, expires time.Time) domain.Session {
		_, hash := domain.NewSessionToken()
		return domain.Session{TokenHash: hash, MerchantID: m, CSRFToken: domain.NewCSRFToken(), CreatedAt: at, ExpiresAt: expires}
	}

	t.Run("a session is found under its hash only, with its merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m1, m2 := newMerchant(t, st), newMerchant(t, st)
		s1, s2 := newSession(m1, at.Add(time.Hour)), newSession(m2, at.Add(time.Hour))
		is.NoErr(st.Sessions().CreateSession(ctx, s1))
		is.NoErr(st.Sessions().CreateSession(ctx, s2))

		got, err := st.Sessions().Session(ctx, s1.TokenHash, at)
		is.NoErr(err)
		is.Equal(got.MerchantID, m1)               // the session's own merchant
		is.Equal(got.CSRFToken, s1.CSRFToken)      // and its own CSRF token
		is.True(got.ExpiresAt.Equal(s1.ExpiresAt)) // and expiry
		is.True(got.CreatedAt.Equal(s1.CreatedAt))
		got, err = st.Sessions().Session(ctx, s2.TokenHash, at)
		is.NoErr(err)
		is.Equal(got.MerchantID, m2) // the other merchant's session is its own

		_, unknown := domain.NewSessionToken()
		_, err = st.Sessions().Session(ctx, unknown, at)
		is.True(errors.Is(err, domain.ErrNotFound)) // no session under another hash

		sameHash := newSession(m2, at.Add(time.Hour))
		sameHash.TokenHash = s1.TokenHash
		err = st.Sessions().CreateSession(ctx, sameHash)
		is.True(errors.Is(err, domain.ErrConflict)) // a hash is one session's
		got, err = st.Sessions().Session(ctx, s1.TokenHash, at)
		is.NoErr(err)
		is.Equal(got.MerchantID, m1) // the refused one changed nothing
	})

	t.Run("an expired session is not found", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		s := newSession(newMerchant(t, st), at.Add(time.Hour))
		is.NoErr(st.Sessions().CreateSession(ctx, s))
		_, err := st.Sessions().Session(ctx, s.TokenHash, at.Add(time.Hour-time.Microsecond))
		is.NoErr(err) // valid until its expiry
		_, err = st.Sessions().Session(ctx, s.TokenHash, at.Add(time.Hour))
		is.True(errors.Is(err, domain.ErrNotFound)) // not at its expiry
		_, err = st.Sessions().Session(ctx, s.TokenHash, at.Add(2*time.Hour))
		is.True(errors.Is(err, domain.ErrNotFound)) // nor after
	})

	t.Run("a deleted session is not found, and deleting again is fine", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		gone, kept := newSession(m, at.Add(time.Hour)), newSession(m, at.Add(time.Hour))
		is.NoErr(st.Sessions().CreateSession(ctx, gone))
		is.NoErr(st.Sessions().CreateSession(ctx, kept))
		is.NoErr(st.Sessions().DeleteSession(ctx, gone.TokenHash))
		_, err := st.Sessions().Session(ctx, gone.TokenHash, at)
		is.True(errors.Is(err, domain.ErrNotFound)) // signed out
		_, err = st.Sessions().Session(ctx, kept.TokenHash, at)
		is.NoErr(err)                                              // the merchant's other session stays
		is.NoErr(st.Sessions().DeleteSession(ctx, gone.TokenHash)) // nothing to delete is no error
	})

	t.Run("expired sessions are pruned in batches, live ones stay", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		var expired []domain.Session
		for i := range 3 {
			s := newSession(m, at.Add(time.Duration(i+1)*time.Minute))
			is.NoErr(st.Sessions().CreateSession(ctx, s))
			expired = append(expired, s)
		}
		live := newSession(m, at.Add(time.Hour))
		is.NoErr(st.Sessions().CreateSession(ctx, live))

		pruneAt := at.Add(3 * time.Minute)
		n, err := st.Sessions().PruneSessions(ctx, pruneAt, 2)
		is.NoErr(err)
		is.Equal(n, 2) // a full batch
		n, err = st.Sessions().PruneSessions(ctx, pruneAt, 2)
		is.NoErr(err)
		is.Equal(n, 1) // the rest
		n, err = st.Sessions().PruneSessions(ctx, pruneAt, 2)
		is.NoErr(err)
		is.Equal(n, 0) // nothing left to prune
		_, err = st.Sessions().Session(ctx, live.TokenHash, at)
		is.NoErr(err) // the live session stays
		for _, s := range expired {
			_, err = st.Sessions().Session(ctx, s.TokenHash, at)
			is.True(errors.Is(err, domain.ErrNotFound)) // the expired ones are gone, even asked for before their expiry
		}
		_, err = st.Sessions().PruneSessions(ctx, pruneAt, 0)
		is.True(errors.Is(err, domain.ErrInvalid)) // a batch is positive
	})

	t.Run("a session without a merchant or CSRF token is refused", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		s := newSession(newMerchant(t, st), at.Add(time.Hour))
		noCSRF := s
		noCSRF.CSRFToken = ""
		is.True(errors.Is(st.Sessions().CreateSession(ctx, noCSRF), domain.ErrInvalid)) // no CSRF token
		noMerchant := s
		noMerchant.MerchantID = ""
		is.True(errors.Is(st.Sessions().CreateSession(ctx, noMerchant), domain.ErrInvalid)) // no merchant
		_, err := st.Sessions().Session(ctx, s.TokenHash, at)
		is.True(errors.Is(err, domain.ErrNotFound)) // neither was stored
	})
}
