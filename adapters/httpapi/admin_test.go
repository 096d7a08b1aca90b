package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

func TestAdminCreateMerchant(t *testing.T) {
	e := newEnv(t)
	admin := []string{"Authorization", "Bearer " + adminToken, "Content-Type", contentJSON}
	taken := stripetest.NewID("acct_")

	t.Run("created", func(t *testing.T) {
		is := is.New(t)
		e := e.with(t)
		r := e.do(http.MethodPost, "/admin/merchants", strings.NewReader(`{"name":" Acme ","stripe_account_id":"`+taken+`"}`), admin...)
		is.Equal(r.status, http.StatusCreated)
		var out map[string]string
		r.decode(t, &out)
		is.Equal(len(out), 5) // id, name, stripe_account_id, api_key, api_key_prefix
		is.Equal(out["name"], "Acme")
		is.Equal(out["stripe_account_id"], taken)
		_, err := domain.ParseUUID(out["id"])
		is.NoErr(err)                                                         // a UUID
		is.True(strings.HasPrefix(out["api_key"], out["api_key_prefix"]+"_")) // the prefix names the key
		is.True(strings.HasPrefix(out["api_key_prefix"], "rk_"))
		is.Equal(r.header.Get("Cache-Control"), "no-store")         // the key is not cached anywhere
		is.True(!strings.Contains(e.logs.String(), out["api_key"])) // and was never logged
	})

	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"account already bound", `{"name":"Copycat","stripe_account_id":"` + taken + `"}`, 409, "already bound"},
		{"unknown field", `{"name":"X","stripe_account_id":"acct_1","admin":true}`, 400, `unknown field "admin"`},
		{"trailing data", `{"name":"X","stripe_account_id":"acct_2"} {}`, 400, "single JSON object"},
		{"trailing garbage", `{"name":"X","stripe_account_id":"acct_3"}xyz`, 400, "single JSON object"},
		{"empty body", ``, 400, "must be a JSON object"},
		{"array", `[]`, 400, "must be a JSON object"},
		{"wrong type", `{"name":5,"stripe_account_id":"acct_4"}`, 400, `"name" must be a string`},
		{"not JSON", `name=X`, 400, "invalid JSON"},
		{"truncated", `{"name":"X"`, 400, "unexpected end"},
		{"missing name", `{"stripe_account_id":"acct_5"}`, 400, "name"},
		{"bad account", `{"name":"X","stripe_account_id":"cus_5"}`, 400, "stripe_account_id"},
		{"body over 64 KiB", `{"name":"` + strings.Repeat("n", 64<<10) + `","stripe_account_id":"acct_6"}`, 413, "larger than 64 KiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			e := e.with(t)
			r := e.do(http.MethodPost, "/admin/merchants", strings.NewReader(tc.body), admin...)
			is.Equal(r.status, tc.status)
			is.True(strings.Contains(r.errorMessage(t), tc.message)) // a clear message
		})
	}
	is := is.New(t)
	for _, acct := range []string{"acct_1", "acct_2", "acct_3", "acct_4", "acct_5", "acct_6"} {
		_, err := e.mem.Merchants().MerchantByStripeAccount(context.Background(), acct)
		is.True(errors.Is(err, domain.ErrNotFound)) // no refused request created a merchant
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, withAdminToken(""))
	for _, req := range []struct{ method, path string }{
		{http.MethodPost, "/admin/merchants"},
		{http.MethodPost, "/admin/merchants/" + domain.NewID() + "/api-keys"},
		{http.MethodDelete, "/admin/merchants/" + domain.NewID() + "/api-keys/rk_abc"},
		{http.MethodGet, "/admin/"},
	} {
		for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
			var h []string
			if auth != "" {
				h = []string{"Authorization", auth}
			}
			r := e.do(req.method, req.path, strings.NewReader(`{"name":"X","stripe_account_id":"acct_x"}`), h...)
			is.Equal(r.status, http.StatusNotFound) // the admin API does not exist
			is.Equal(r.header.Get("WWW-Authenticate"), "")
		}
	}
	_, err := e.mem.Merchants().MerchantByStripeAccount(context.Background(), "acct_x")
	is.True(errors.Is(err, domain.ErrNotFound))
}

func TestHealth(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	r := e.do(http.MethodGet, "/healthz", nil)
	is.Equal(r.status, http.StatusOK)
	is.Equal(strings.TrimSpace(string(r.body)), `{"status":"ok"}`)
	r = e.do(http.MethodGet, "/readyz", nil)
	is.Equal(r.status, http.StatusOK) // memory is always reachable

	var deadline bool
	down := newEnv(t, withReady(func(ctx context.Context) error {
		_, deadline = ctx.Deadline()
		return domain.ErrUnavailable
	}))
	r = down.do(http.MethodGet, "/readyz", nil)
	is.Equal(r.status, http.StatusServiceUnavailable) // storage unreachable
	is.True(r.errorMessage(t) != "")
	is.True(deadline) // the check is bounded in time
	r = down.do(http.MethodGet, "/healthz", nil)
	is.Equal(r.status, http.StatusOK) // the process itself is up

	r = e.do(http.MethodGet, "/nowhere", nil)
	is.Equal(r.status, http.StatusNotFound)
	is.Equal(r.errorMessage(t), "Not found") // JSON even for unknown paths
	r = e.do(http.MethodPut, "/api/tasks", nil, "Authorization", "Bearer "+e.createMerchant("M").Key)
	is.Equal(r.status, http.StatusMethodNotAllowed)
	is.Equal(r.header.Get("Allow"), http.MethodGet)
}
