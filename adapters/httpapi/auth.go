package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
)

// MerchantResolver decides which merchant a request acts for.
//
// ResolveMerchant returns an error wrapping ErrUnauthenticated when the
// request carries no acceptable credentials (answered 401, with the error's
// text as the message, so it must not reveal anything secret); any other
// error is answered through the usual mapping (ErrUnavailable: 503, ErrForbidden: 403,
// anything else: 500).
type MerchantResolver interface {
	// ResolveMerchant returns the merchant r acts for, or an error as
	// above.
	ResolveMerchant(r *http.Request) (domain.Merchant, error)
}

// MerchantResolverFunc adapts a function to MerchantResolver.
type MerchantResolverFunc func(r *http.Request) (domain.Merchant, error)

// ResolveMerchant calls f(r).
func (f MerchantResolverFunc) ResolveMerchant(r *http.Request) (domain.Merchant, error) { return f(r) }

var _ MerchantResolver = APIKeyResolver{}

// APIKeyResolver resolves a merchant from recoup's own API keys:
// Authorization: Bearer <key>.
type APIKeyResolver struct {
	Merchants *app.MerchantService
}

// ResolveMerchant authenticates the request's bearer key. A missing or
// malformed header, or an unknown or revoked key, is ErrUnauthenticated;
// the message never says which of unknown or revoked it was.
func (a APIKeyResolver) ResolveMerchant(r *http.Request) (domain.Merchant, error) {
	key, err := bearerToken(r)
	if err != nil {
		return domain.Merchant{}, err
	}
	m, err := a.Merchants.Authenticate(r.Context(), key)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Merchant{}, fmt.Errorf("%w: invalid API key", ErrUnauthenticated)
	}
	if err != nil {
		return domain.Merchant{}, fmt.Errorf("authenticate api key: %w", err)
	}
	return m, nil
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme is case-insensitive, as RFC 9110 says).
func bearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", fmt.Errorf("%w: missing Authorization header", ErrUnauthenticated)
	case len(values) > 1:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrUnauthenticated)
	}
	return token, nil
}

type merchantKey struct{}

// MerchantFrom returns the merchant the task API resolved for this request.
// It is set only by the task API, after its resolver accepted the request.
func MerchantFrom(ctx context.Context) (domain.Merchant, bool) {
	m, ok := ctx.Value(merchantKey{}).(domain.Merchant)
	return m, ok && m.ID != ""
}

// requireMerchant resolves the merchant before anything else of the task
// API runs, and puts it in the request context.
// Clients that fail too often are refused by limiter before the resolver
// runs.
func requireMerchant(resolver MerchantResolver, limiter *AuthLimiter, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !limiter.admit(w, r) {
			return
		}
		m, err := resolver.ResolveMerchant(r)
		if err == nil && m.ID == "" {
			// A resolver that accepts a request without naming a merchant
			// is a bug; fail closed.
			err = fmt.Errorf("merchant resolver returned no merchant")
		}
		if err != nil {
			if statusOf(err) == http.StatusUnauthorized {
				limiter.noteFailure(r, log)
			}
			writeError(w, r, log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), merchantKey{}, m)))
	})
}

// merchantHandler is a handler that acts for a merchant.
type merchantHandler func(w http.ResponseWriter, r *http.Request, m domain.Merchant)

// forMerchant runs h with the request's resolved merchant; without one, h
// does not run at all.
func forMerchant(log *slog.Logger, h merchantHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := MerchantFrom(r.Context())
		if !ok {
			writeError(w, r, log, fmt.Errorf("%w: no merchant for this request", ErrUnauthenticated))
			return
		}
		h(w, r, m)
	})
}

// adminToken checks the admin bearer token. Both sides are hashed first so
// that the constant-time comparison does not reveal the token's length.
type adminToken [sha256.Size]byte

func newAdminToken(token string) adminToken { return sha256.Sum256([]byte(token)) }

func (t adminToken) matches(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(t[:], h[:]) == 1
}
