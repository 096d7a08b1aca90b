package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// sessions are rows of dashboard_sessions, one per session.
type sessions struct {
	db querier
}

// Sessions returns the dashboard's sessions, outside any unit of work.
func (s *Store) Sessions() ports.Sessions { return sessions{db: s.sql} }

func (ss sessions) CreateSession(ctx context.Context, sess domain.Session) error {
	if _, err := domain.ParseUUID(string(sess.MerchantID)); err != nil {
		return fmt.Errorf("create session: merchant id: %w", err)
	}
	if sess.CSRFToken == "" || !domain.StorableText(sess.CSRFToken) {
		return fmt.Errorf("create session: %w: empty CSRF token, or one with a NUL character", domain.ErrInvalid)
	}
	_, err := ss.db.ExecContext(ctx, `
		INSERT INTO dashboard_sessions (token_hash, merchant_id, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`,
		sess.TokenHash[:], string(sess.MerchantID), sess.CSRFToken, sess.CreatedAt, sess.ExpiresAt)
	return interpretError("create session", err)
}

func (ss sessions) Session(ctx context.Context, hash domain.SessionHash, now time.Time) (domain.Session, error) {
	sess := domain.Session{TokenHash: hash}
	var merchant string
	err := ss.db.QueryRowContext(ctx, `
		SELECT merchant_id, csrf_token, created_at, expires_at FROM dashboard_sessions
		WHERE token_hash = $1 AND expires_at > $2`, hash[:], now).
		Scan(&merchant, &sess.CSRFToken, &sess.CreatedAt, &sess.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Session{}, fmt.Errorf("session: %w", domain.ErrNotFound)
	}
	if err != nil {
		return domain.Session{}, interpretError("session", err)
	}
	sess.MerchantID = domain.MerchantID(merchant)
	sess.CreatedAt, sess.ExpiresAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC()
	return sess, nil
}

func (ss sessions) DeleteSession(ctx context.Context, hash domain.SessionHash) error {
	_, err := ss.db.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE token_hash = $1`, hash[:])
	return interpretError("delete session", err)
}

// PruneSessions deletes expired sessions in one short statement, skipping
// rows another pruner is deleting at the same moment.
func (ss sessions) PruneSessions(ctx context.Context, now time.Time, batch int) (int, error) {
	return deleteBatch(ctx, ss.db, "prune sessions", "dashboard_sessions", "expires_at <= $1", now, batch)
}
