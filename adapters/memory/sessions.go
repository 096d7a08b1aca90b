package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// sessions are the dashboard's sessions. Each call is a single step, a
// unit of work of its own.
type sessions struct{ s *Store }

// Sessions returns the dashboard's sessions; each call commits on its own.
func (s *Store) Sessions() ports.Sessions { return sessions{s} }

func (ss sessions) CreateSession(ctx context.Context, sess domain.Session) error {
	if err := validSession(sess); err != nil {
		return err
	}
	id, _ := domain.ParseUUID(string(sess.MerchantID))
	sess.MerchantID = domain.MerchantID(id)
	sess.CreatedAt, sess.ExpiresAt = norm(sess.CreatedAt), norm(sess.ExpiresAt)
	return ss.s.run(ctx, func(u *unit) error {
		if _, ok := u.s.sessions[sess.TokenHash]; ok {
			return fmt.Errorf("create session: %w: token already used", domain.ErrConflict)
		}
		u.s.sessions[sess.TokenHash] = sess
		return nil
	})
}

// validSession checks what both adapters refuse to store.
func validSession(sess domain.Session) error {
	if _, err := domain.ParseUUID(string(sess.MerchantID)); err != nil {
		return fmt.Errorf("create session: merchant id: %w", err)
	}
	if sess.CSRFToken == "" || !domain.StorableText(sess.CSRFToken) {
		return fmt.Errorf("create session: %w: empty CSRF token, or one with a NUL character", domain.ErrInvalid)
	}
	return nil
}

func (ss sessions) Session(ctx context.Context, hash domain.SessionHash, now time.Time) (domain.Session, error) {
	var got domain.Session
	err := ss.s.run(ctx, func(u *unit) error {
		sess, ok := u.s.sessions[hash]
		if !ok || !sess.ExpiresAt.After(now) {
			return fmt.Errorf("session: %w", domain.ErrNotFound)
		}
		got = sess
		return nil
	})
	return got, err
}

func (ss sessions) DeleteSession(ctx context.Context, hash domain.SessionHash) error {
	return ss.s.run(ctx, func(u *unit) error {
		delete(u.s.sessions, hash)
		return nil
	})
}

func (ss sessions) PruneSessions(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("prune sessions: %w: batch must be positive", domain.ErrInvalid)
	}
	n := 0
	err := ss.s.run(ctx, func(u *unit) error {
		for hash, sess := range u.s.sessions {
			if n == batch {
				break
			}
			if !sess.ExpiresAt.After(now) {
				delete(u.s.sessions, hash)
				n++
			}
		}
		return nil
	})
	return n, err
}
