package dashboard

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

// policyForm is the policy as the form shows it: each field under the
// name of its policy JSON field (emails' fields as emails.<name>), lists
// as comma-separated text, and the delays by decline code one
// "code: h1, h2" per line.
type policyForm struct {
	RetryDelaysHours            string
	DelaysByDeclineCode         string
	HardDeclineCodes            string
	MaxAttempts                 string
	RetryWindowDays             string
	PaymentFailed               bool
	ActionRequired              bool
	ChargeFailed                bool
	CardExpiring                bool
	ReminderHours               string
	MaxEmailsPerCustomerPerWeek string
	OnExhausted                 string
	Actions                     []domain.ExhaustedAction
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func newPolicyForm(p domain.DunningPolicy) policyForm {
	var lines []string
	for _, code := range slices.Sorted(maps.Keys(p.DelaysByDeclineCode)) {
		lines = append(lines, code+": "+joinInts(p.DelaysByDeclineCode[code]))
	}
	return policyForm{
		RetryDelaysHours: joinInts(p.RetryDelaysHours), DelaysByDeclineCode: strings.Join(lines, "\n"),
		HardDeclineCodes: strings.Join(p.HardDeclineCodes, ", "), MaxAttempts: strconv.Itoa(p.MaxAttempts),
		RetryWindowDays: strconv.Itoa(p.RetryWindowDays), PaymentFailed: p.Emails.PaymentFailed,
		ActionRequired: p.Emails.ActionRequired, ChargeFailed: p.Emails.ChargeFailed, CardExpiring: p.Emails.CardExpiring,
		ReminderHours: joinInts(p.Emails.ReminderHours), MaxEmailsPerCustomerPerWeek: strconv.Itoa(p.MaxEmailsPerCustomerPerWeek),
		OnExhausted: string(p.OnExhausted), Actions: domain.ExhaustedActions,
	}
}

// readPolicyForm reads the posted form, keeping its text to show again.
func readPolicyForm(r *http.Request) policyForm {
	f := r.PostForm
	return policyForm{
		RetryDelaysHours: f.Get("retry_delays_hours"), DelaysByDeclineCode: f.Get("delays_by_decline_code"),
		HardDeclineCodes: f.Get("hard_decline_codes"), MaxAttempts: f.Get("max_attempts"),
		RetryWindowDays: f.Get("retry_window_days"), PaymentFailed: f.Has("emails.payment_failed"),
		ActionRequired: f.Has("emails.action_required"), ChargeFailed: f.Has("emails.charge_failed"),
		CardExpiring: f.Has("emails.card_expiring"), ReminderHours: f.Get("emails.reminder_hours"),
		MaxEmailsPerCustomerPerWeek: f.Get("max_emails_per_customer_per_week"), OnExhausted: f.Get("on_exhausted"),
		Actions: domain.ExhaustedActions,
	}
}

// invalidField is a 400 naming the field, as the API's messages do.
func invalidField(field, problem string) error {
	return weberr.WithMessage(domain.ErrInvalid, field+": "+problem)
}

func parseInt(field, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, invalidField(field, fmt.Sprintf("%.20q is not a whole number", strings.TrimSpace(s)))
	}
	return n, nil
}

func parseInts(field, s string) ([]int, error) {
	out := []int{}
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n, err := parseInt(field, part)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// policy returns the policy the form describes; a 400 naming the first
// field that is not even a number or a list. The limits are the domain's,
// checked by the use case.
func (f policyForm) policy() (domain.DunningPolicy, error) {
	var p domain.DunningPolicy
	var err error
	if p.RetryDelaysHours, err = parseInts("retry_delays_hours", f.RetryDelaysHours); err != nil {
		return p, err
	}
	p.DelaysByDeclineCode = map[string][]int{}
	for line := range strings.SplitSeq(f.DelaysByDeclineCode, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		code, delays, ok := strings.Cut(line, ":")
		code = strings.TrimSpace(code)
		if !ok || code == "" {
			return p, invalidField("delays_by_decline_code", fmt.Sprintf("%.40q: write one \"code: hours, hours\" per line", strings.TrimSpace(line)))
		}
		if _, dup := p.DelaysByDeclineCode[code]; dup {
			return p, invalidField("delays_by_decline_code", fmt.Sprintf("%.40q is listed twice", code))
		}
		if p.DelaysByDeclineCode[code], err = parseInts("delays_by_decline_code."+code, delays); err != nil {
			return p, err
		}
	}
	p.HardDeclineCodes = []string{}
	for code := range strings.SplitSeq(f.HardDeclineCodes, ",") {
		if code = strings.TrimSpace(code); code != "" {
			p.HardDeclineCodes = append(p.HardDeclineCodes, code)
		}
	}
	if p.MaxAttempts, err = parseInt("max_attempts", f.MaxAttempts); err != nil {
		return p, err
	}
	if p.RetryWindowDays, err = parseInt("retry_window_days", f.RetryWindowDays); err != nil {
		return p, err
	}
	p.Emails = domain.EmailPolicy{PaymentFailed: f.PaymentFailed, ActionRequired: f.ActionRequired,
		ChargeFailed: f.ChargeFailed, CardExpiring: f.CardExpiring}
	if p.Emails.ReminderHours, err = parseInts("emails.reminder_hours", f.ReminderHours); err != nil {
		return p, err
	}
	if p.MaxEmailsPerCustomerPerWeek, err = parseInt("max_emails_per_customer_per_week", f.MaxEmailsPerCustomerPerWeek); err != nil {
		return p, err
	}
	p.OnExhausted = domain.ExhaustedAction(f.OnExhausted)
	return p, nil
}

func (d *dashboard) handlePolicy(w http.ResponseWriter, r *http.Request, v visitor) {
	p, err := d.cfg.Policies.Get(r.Context(), v.merchant)
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.render(w, r, http.StatusOK, "policy", page{Title: "Dunning policy", Nav: "policy", Flash: flashOf(r), Data: newPolicyForm(p)}, v)
}

func (d *dashboard) handleSetPolicy(w http.ResponseWriter, r *http.Request, v visitor) {
	form := readPolicyForm(r)
	p, err := form.policy()
	if err == nil {
		// An invalid policy is a *domain.PolicyError, whose text names
		// the field: the API's 400 message.
		_, err = d.cfg.Policies.Set(r.Context(), v.merchant, p)
	}
	if statusOf(err) == http.StatusBadRequest {
		d.render(w, r, http.StatusBadRequest, "policy", page{Title: "Dunning policy", Nav: "policy",
			Error: messageOf(err, http.StatusBadRequest), Data: form}, v)
		return
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.redirect(w, r, "/policy?done=policy")
}
