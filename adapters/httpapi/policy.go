package httpapi

import (
	"net/http"

	"github.com/recoupdev/recoup/domain"
)

// policyJSON is a dunning policy as GET and PUT /api/policy carry it. PUT
// takes the whole policy: every field is required (pointers tell a
// missing one from a zero).
type policyJSON struct {
	RetryDelaysHours            *[]int                  `json:"retry_delays_hours"`
	DelaysByDeclineCode         *map[string][]int       `json:"delays_by_decline_code"`
	HardDeclineCodes            *[]string               `json:"hard_decline_codes"`
	MaxAttempts                 *int                    `json:"max_attempts"`
	RetryWindowDays             *int                    `json:"retry_window_days"`
	Emails                      *emailPolicyJSON        `json:"emails"`
	MaxEmailsPerCustomerPerWeek *int                    `json:"max_emails_per_customer_per_week"`
	OnExhausted                 *domain.ExhaustedAction `json:"on_exhausted"`
}

type emailPolicyJSON struct {
	PaymentFailed  *bool  `json:"payment_failed"`
	ActionRequired *bool  `json:"action_required"`
	ChargeFailed   *bool  `json:"charge_failed"`
	CardExpiring   *bool  `json:"card_expiring"`
	ReminderHours  *[]int `json:"reminder_hours"`
}

func newPolicyJSON(p domain.DunningPolicy) policyJSON {
	nonNil := func(s []int) *[]int {
		if s == nil {
			s = []int{}
		}
		return &s
	}
	codes := p.HardDeclineCodes
	if codes == nil {
		codes = []string{}
	}
	byCode := map[string][]int{}
	for code, delays := range p.DelaysByDeclineCode {
		byCode[code] = delays
	}
	return policyJSON{
		RetryDelaysHours: nonNil(p.RetryDelaysHours), DelaysByDeclineCode: &byCode, HardDeclineCodes: &codes,
		MaxAttempts: &p.MaxAttempts, RetryWindowDays: &p.RetryWindowDays,
		Emails: &emailPolicyJSON{
			PaymentFailed: &p.Emails.PaymentFailed, ActionRequired: &p.Emails.ActionRequired,
			ChargeFailed: &p.Emails.ChargeFailed, CardExpiring: &p.Emails.CardExpiring,
			ReminderHours: nonNil(p.Emails.ReminderHours),
		},
		MaxEmailsPerCustomerPerWeek: &p.MaxEmailsPerCustomerPerWeek, OnExhausted: &p.OnExhausted,
	}
}

// policy checks that every field is there and returns the policy; the
// first missing field, in the order of the JSON, is a 400 naming it. The
// limits are the domain's (Validate), checked by the use case.
func (j policyJSON) policy() (domain.DunningPolicy, error) {
	missing := func(field string) error { return invalid(field + ": is required (PUT takes the whole policy)") }
	var p domain.DunningPolicy
	switch {
	case j.RetryDelaysHours == nil:
		return p, missing("retry_delays_hours")
	case j.DelaysByDeclineCode == nil:
		return p, missing("delays_by_decline_code")
	case j.HardDeclineCodes == nil:
		return p, missing("hard_decline_codes")
	case j.MaxAttempts == nil:
		return p, missing("max_attempts")
	case j.RetryWindowDays == nil:
		return p, missing("retry_window_days")
	case j.Emails == nil:
		return p, missing("emails")
	case j.Emails.PaymentFailed == nil:
		return p, missing("emails.payment_failed")
	case j.Emails.ActionRequired == nil:
		return p, missing("emails.action_required")
	case j.Emails.ChargeFailed == nil:
		return p, missing("emails.charge_failed")
	case j.Emails.CardExpiring == nil:
		return p, missing("emails.card_expiring")
	case j.Emails.ReminderHours == nil:
		return p, missing("emails.reminder_hours")
	case j.MaxEmailsPerCustomerPerWeek == nil:
		return p, missing("max_emails_per_customer_per_week")
	case j.OnExhausted == nil:
		return p, missing("on_exhausted")
	}
	return domain.DunningPolicy{
		RetryDelaysHours: *j.RetryDelaysHours, DelaysByDeclineCode: *j.DelaysByDeclineCode,
		HardDeclineCodes: *j.HardDeclineCodes, MaxAttempts: *j.MaxAttempts, RetryWindowDays: *j.RetryWindowDays,
		Emails: domain.EmailPolicy{
			PaymentFailed: *j.Emails.PaymentFailed, ActionRequired: *j.Emails.ActionRequired,
			ChargeFailed: *j.Emails.ChargeFailed, CardExpiring: *j.Emails.CardExpiring,
			ReminderHours: *j.Emails.ReminderHours,
		},
		MaxEmailsPerCustomerPerWeek: *j.MaxEmailsPerCustomerPerWeek, OnExhausted: *j.OnExhausted,
	}, nil
}

func (a *taskAPI) handleGetPolicy(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	p, err := a.policies.Get(r.Context(), m)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newPolicyJSON(p))
}

func (a *taskAPI) handlePutPolicy(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	var in policyJSON
	if err := decodeJSON(w, r, MaxRequestBody, &in); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	p, err := in.policy()
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	// An invalid policy is a *domain.PolicyError, whose text names the
	// field: the 400's message.
	stored, err := a.policies.Set(r.Context(), m, p)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newPolicyJSON(stored))
}
