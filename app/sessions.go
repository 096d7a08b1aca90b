package app

import (
	"context"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// DefaultSessionTTL is how long a dashboard session lasts.
const DefaultSessionTTL = 12 * time.Hour

// sessionPruneBatch bounds how many expired sessions one sign-in deletes.
const sessionPruneBatch = 100

// SessionService signs merchants in to the dashboard with an API key. A
// session is stored (ports.Sessions) rather than signed into the cookie,
// so that signing out, or a revoked merchant, ends it at once on every
// process; the browser holds only a random token whose hash is the key.
type SessionService struct {
	sessions  ports.Sessions
	merchants *MerchantService
	clock     ports.Clock
	ttl       time.Duration
}

// NewSessionService returns the session use cases; sessions last ttl
// (DefaultSessionTTL when zero).
func NewSessionService(sessions ports.Sessions, merchants *MerchantService, clock ports.Clock, ttl time.Duration) *SessionService {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &SessionService{sessions: sessions, merchants: merchants, clock: clock, ttl: ttl}
}

// TTL is how long a session lasts from its sign-in.
func (s *SessionService) TTL() time.Duration { return s.ttl }

// SignIn exchanges an API key for a new session and returns its token,
// which only the browser keeps. Any malformed, unknown or revoked key is
// ErrNotFound, so callers cannot tell them apart. Each sign-in first
// deletes a batch of expired sessions, which keeps the store small with no
// job of its own.
func (s *SessionService) SignIn(ctx context.Context, apiKey string) (string, domain.Session, error) {
	m, err := s.merchants.Authenticate(ctx, apiKey)
	if err != nil {
		return "", domain.Session{}, err
	}
	now := s.clock.Now()
	if _, err := s.sessions.PruneSessions(ctx, now, sessionPruneBatch); err != nil {
		return "", domain.Session{}, fmt.Errorf("prune sessions: %w", err)
	}
	token, hash := domain.NewSessionToken()
	sess := domain.Session{TokenHash: hash, MerchantID: m.ID, CSRFToken: domain.NewCSRFToken(), CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	if err := s.sessions.CreateSession(ctx, sess); err != nil {
		return "", domain.Session{}, fmt.Errorf("create session: %w", err)
	}
	return token, sess, nil
}

// Resume returns the merchant and the session of a token; ErrNotFound if
// there is no such session, it expired or was signed out, or its merchant
// is gone.
func (s *SessionService) Resume(ctx context.Context, token string) (domain.Merchant, domain.Session, error) {
	sess, err := s.sessions.Session(ctx, domain.HashSessionToken(token), s.clock.Now())
	if err != nil {
		return domain.Merchant{}, domain.Session{}, err
	}
	m, err := s.merchants.dir.MerchantByID(ctx, sess.MerchantID)
	if err != nil {
		return domain.Merchant{}, domain.Session{}, fmt.Errorf("session's merchant: %w", err)
	}
	return m, sess, nil
}

// SignOut ends the token's session at once; with none it does nothing.
func (s *SessionService) SignOut(ctx context.Context, token string) error {
	if err := s.sessions.DeleteSession(ctx, domain.HashSessionToken(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
