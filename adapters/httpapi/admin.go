package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

// MaxAdminBody is the largest admin request body accepted.
const MaxAdminBody = 64 << 10

type adminAPI struct {
	merchants *app.MerchantService
	token     adminToken
	limiter   *AuthLimiter
	log       *slog.Logger
}

// NewAdminAPI returns the admin API (POST /admin/merchants, POST and
// DELETE of /admin/merchants/{id}/api-keys…), guarded by the bearer token.
// An empty token disables it: every request is answered 404, so the admin
// API does not even appear to exist. A nil logger discards. It panics if
// merchants is nil.
//
// Like the task API it routes on the paths of api/openapi.yaml; mount it under a prefix
// with http.StripPrefix. It does not limit failed token attempts; NewServer
// does, given an AuthLimiter.
func NewAdminAPI(merchants *app.MerchantService, token string, log *slog.Logger) http.Handler {
	return newAdminAPI(merchants, token, nil, log)
}

func newAdminAPI(merchants *app.MerchantService, token string, limiter *AuthLimiter, log *slog.Logger) http.Handler {
	if merchants == nil {
		panic("httpapi: NewAdminAPI needs a merchant service")
	}
	log = orDiscard(log)
	if token == "" {
		return http.HandlerFunc(notFound)
	}
	api := &adminAPI{merchants: merchants, token: newAdminToken(token), limiter: limiter, log: log}
	mux := http.NewServeMux()
	api.routes(mux)
	return api.requireToken(limitBody(MaxAdminBody, recordRoute(mux)))
}

func (a *adminAPI) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.limiter.admit(w, r) {
			return
		}
		token, err := bearerToken(r)
		if err == nil && !a.token.matches(token) {
			err = fmt.Errorf("%w: invalid admin token", ErrUnauthenticated)
		}
		if err != nil {
			a.log.LogAttrs(r.Context(), slog.LevelWarn, "admin request refused",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("remote_addr", r.RemoteAddr))
			a.limiter.noteFailure(r, a.log)
			writeError(w, r, a.log, weberr.WithMessage(err, "admin token required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type createMerchantRequest struct {
	Name            string `json:"name"`
	StripeAccountID string `json:"stripe_account_id"`
}

type merchantJSON struct {
	ID              domain.MerchantID `json:"id"`
	Name            string            `json:"name"`
	StripeAccountID string            `json:"stripe_account_id"`
	APIKey          string            `json:"api_key"`
	APIKeyPrefix    string            `json:"api_key_prefix"`
}

type apiKeyJSON struct {
	APIKey       string `json:"api_key"`
	APIKeyPrefix string `json:"api_key_prefix"`
}

func (a *adminAPI) handleCreateMerchant(w http.ResponseWriter, r *http.Request) {
	var req createMerchantRequest
	if err := decodeJSON(w, r, MaxAdminBody, &req); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	m, key, err := a.merchants.Create(r.Context(), req.Name, req.StripeAccountID)
	if err != nil {
		if statusOf(err) == http.StatusConflict {
			err = weberr.WithMessage(err, fmt.Sprintf("stripe account %s is already bound to a merchant", strings.TrimSpace(req.StripeAccountID)))
		}
		writeError(w, r, a.log, err)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "merchant created",
		slog.String("merchant_id", string(m.ID)), slog.String("stripe_account_id", m.StripeAccountID),
		slog.String("api_key_prefix", key.Prefix))
	writeJSON(w, http.StatusCreated, merchantJSON{
		ID: m.ID, Name: m.Name, StripeAccountID: m.StripeAccountID,
		APIKey: key.Plain, APIKeyPrefix: key.Prefix,
	})
}

func merchantID(r *http.Request) (domain.MerchantID, error) {
	raw := r.PathValue("id")
	if len(raw) > 36 {
		return "", invalid("invalid merchant id: must be a UUID")
	}
	id, err := domain.ParseUUID(raw)
	if err != nil {
		return "", invalid(fmt.Sprintf("invalid merchant id %q: must be a UUID", raw))
	}
	return domain.MerchantID(id), nil
}

func (a *adminAPI) handleIssueKey(w http.ResponseWriter, r *http.Request) {
	id, err := merchantID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	key, err := a.merchants.IssueKey(r.Context(), id)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			err = weberr.WithMessage(err, fmt.Sprintf("merchant %s not found", id))
		}
		writeError(w, r, a.log, err)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "api key issued",
		slog.String("merchant_id", string(id)), slog.String("api_key_prefix", key.Prefix))
	writeJSON(w, http.StatusCreated, apiKeyJSON{APIKey: key.Plain, APIKeyPrefix: key.Prefix})
}

func (a *adminAPI) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	id, err := merchantID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	prefix := r.PathValue("prefix")
	if !validKeyPrefix(prefix) {
		writeError(w, r, a.log, invalid("invalid api key prefix: must look like rk_<key id>"))
		return
	}
	if err := a.merchants.RevokeKey(r.Context(), id, prefix); err != nil {
		if statusOf(err) == http.StatusNotFound {
			err = weberr.WithMessage(err, fmt.Sprintf("merchant %s has no api key %s", id, prefix))
		}
		writeError(w, r, a.log, err)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "api key revoked",
		slog.String("merchant_id", string(id)), slog.String("api_key_prefix", prefix))
	w.WriteHeader(http.StatusNoContent)
}

// validKeyPrefix accepts the shape of domain.NewAPIKey's prefixes: rk_ and
// a key id without underscores.
func validKeyPrefix(p string) bool {
	rest, ok := strings.CutPrefix(p, "rk_")
	return ok && rest != "" && len(p) <= 64 && !strings.ContainsAny(rest, "_/")
}

// decodeJSON decodes a request body of one JSON object into v, strictly:
// unknown fields, trailing data and bodies over limit are refused.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return jsonError(err, limit)
		}
		return invalid("request body must hold a single JSON object, with nothing after it")
	}
	return nil
}

func jsonError(err error, limit int64) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return bodyTooLarge(limit)
	}
	switch {
	case errors.Is(err, io.EOF):
		return invalid("request body must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("invalid JSON body: unexpected end")
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return invalid("request body must be a JSON object")
		}
		return invalid(fmt.Sprintf("invalid JSON body: field %q must be a %s", te.Field, te.Type))
	}
	return invalid("invalid JSON body: " + strings.TrimPrefix(err.Error(), "json: "))
}
