package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestPolicyAPI: GET answers the default until a PUT stores a policy; a
// policy breaking any limit is a 400 naming the field, and changes
// nothing; one merchant's policy is never another's.
func TestPolicyAPI(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	acme, globex := e.createMerchant("Acme"), e.createMerchant("Globex")
	get := func(key string) map[string]any {
		t.Helper()
		r := e.api(http.MethodGet, "/api/policy", key)
		is.Equal(r.status, http.StatusOK)
		var p map[string]any
		r.decode(t, &p)
		return p
	}
	put := func(key string, p map[string]any) response {
		t.Helper()
		body, err := json.Marshal(p)
		is.NoErr(err)
		return e.do(http.MethodPut, "/api/policy", bytes.NewReader(body), "Authorization", "Bearer "+key, "Content-Type", contentJSON)
	}
	defaults := get(acme.Key)
	is.Equal(defaults["max_attempts"], 8.0) // the default policy
	is.Equal(defaults["on_exhausted"], "none")

	mine := get(acme.Key)
	mine["retry_delays_hours"] = []int{12, 48}
	mine["on_exhausted"] = "mark_uncollectible"
	r := put(acme.Key, mine)
	is.Equal(r.status, http.StatusOK) // stored
	is.Equal(get(acme.Key)["on_exhausted"], "mark_uncollectible")
	is.Equal(get(globex.Key), defaults) // another merchant keeps its own

	stored := get(acme.Key)
	bad := []struct {
		field string
		value any
		says  string
	}{
		{"retry_delays_hours", []int{0}, "retry_delays_hours[0]"},
		{"retry_delays_hours", []int{1441}, "retry_delays_hours[0]"},
		{"retry_delays_hours", make([]int, 13), "retry_delays_hours"},
		{"delays_by_decline_code", map[string][]int{"Bad Code": {24}}, "delays_by_decline_code"},
		{"hard_decline_codes", []string{"stolen card"}, "hard_decline_codes[0]"},
		{"max_attempts", 0, "max_attempts"},
		{"max_attempts", 21, "max_attempts"},
		{"retry_window_days", 61, "retry_window_days"},
		{"max_emails_per_customer_per_week", 0, "max_emails_per_customer_per_week"},
		{"on_exhausted", "refund", "on_exhausted"},
		{"emails", nil, "emails"},
	}
	for _, c := range bad {
		p := get(acme.Key)
		p[c.field] = c.value
		if c.value == nil {
			delete(p, c.field)
		}
		r := put(acme.Key, p)
		is.Equal(r.status, http.StatusBadRequest) // refused
		var answer struct {
			Error string `json:"error"`
		}
		r.decode(t, &answer)
		if !strings.Contains(answer.Error, c.says) {
			t.Errorf("%s = %v: the error %q does not name %s", c.field, c.value, answer.Error, c.says)
		}
		is.Equal(get(acme.Key), stored) // and nothing changed
	}
	is.Equal(e.api(http.MethodGet, "/api/policy", "rk_nobody").status, http.StatusUnauthorized)
}
