package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// policyStore keeps each merchant's dunning policy as JSON in
// merchant_policies: one value read and written whole, whose fields the
// database never looks into.
type policyStore struct {
	db querier
	// now stamps a policy's updated_at.
	now func() time.Time
}

// storedPolicy is a domain.DunningPolicy as the policy's JSON names its
// fields. encoding/json writes a nil slice or map as null and an empty one
// as [] or {}, and reads each back as it was, so a policy reads back
// equal to the one stored.
type storedPolicy struct {
	RetryDelaysHours            []int            `json:"retry_delays_hours"`
	DelaysByDeclineCode         map[string][]int `json:"delays_by_decline_code"`
	HardDeclineCodes            []string         `json:"hard_decline_codes"`
	MaxAttempts                 int              `json:"max_attempts"`
	RetryWindowDays             int              `json:"retry_window_days"`
	Emails                      storedEmails     `json:"emails"`
	MaxEmailsPerCustomerPerWeek int              `json:"max_emails_per_customer_per_week"`
	OnExhausted                 string           `json:"on_exhausted"`
}

// storedEmails is a domain.EmailPolicy with the JSON's names; the two
// convert into each other, so a field added to one and not the other
// does not compile.
type storedEmails struct {
	PaymentFailed  bool  `json:"payment_failed"`
	ActionRequired bool  `json:"action_required"`
	ChargeFailed   bool  `json:"charge_failed"`
	CardExpiring   bool  `json:"card_expiring"`
	ReminderHours  []int `json:"reminder_hours"`
}

func storedPolicyOf(p domain.DunningPolicy) storedPolicy {
	return storedPolicy{
		RetryDelaysHours: p.RetryDelaysHours, DelaysByDeclineCode: p.DelaysByDeclineCode,
		HardDeclineCodes: p.HardDeclineCodes, MaxAttempts: p.MaxAttempts, RetryWindowDays: p.RetryWindowDays,
		Emails: storedEmails(p.Emails), MaxEmailsPerCustomerPerWeek: p.MaxEmailsPerCustomerPerWeek,
		OnExhausted: string(p.OnExhausted),
	}
}

func (s storedPolicy) policy() domain.DunningPolicy {
	return domain.DunningPolicy{
		RetryDelaysHours: s.RetryDelaysHours, DelaysByDeclineCode: s.DelaysByDeclineCode,
		HardDeclineCodes: s.HardDeclineCodes, MaxAttempts: s.MaxAttempts, RetryWindowDays: s.RetryWindowDays,
		Emails: domain.EmailPolicy(s.Emails), MaxEmailsPerCustomerPerWeek: s.MaxEmailsPerCustomerPerWeek,
		OnExhausted: domain.ExhaustedAction(s.OnExhausted),
	}
}

// Policy reads the merchant's policy; a merchant without a row has the
// default.
func (s policyStore) Policy(ctx context.Context, merchant domain.MerchantID) (domain.DunningPolicy, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.DunningPolicy{}, fmt.Errorf("read policy: %w", err)
	}
	var doc []byte
	err = s.db.QueryRowContext(ctx, `SELECT policy FROM merchant_policies WHERE merchant_id = $1`, mid).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.DefaultDunningPolicy(), nil
	}
	if err != nil {
		return domain.DunningPolicy{}, interpretError("read policy", err)
	}
	p, err := decodePolicy(doc)
	if err != nil {
		return domain.DunningPolicy{}, fmt.Errorf("read policy of merchant %s: %w", merchant, err)
	}
	return p, nil
}

// decodePolicy reads a policy column.
func decodePolicy(doc []byte) (domain.DunningPolicy, error) {
	var stored storedPolicy
	if err := json.Unmarshal(doc, &stored); err != nil {
		return domain.DunningPolicy{}, err
	}
	return stored.policy(), nil
}

// SetPolicy validates the policy, then writes it whole, replacing any
// earlier one in the same statement.
func (s policyStore) SetPolicy(ctx context.Context, merchant domain.MerchantID, p domain.DunningPolicy) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return err // the *domain.PolicyError itself, which names the field
	}
	doc, err := json.Marshal(storedPolicyOf(p))
	if err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	// The document goes as text: bun's formatter (sqlOf) would write a
	// []byte as bytea.
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO merchant_policies (merchant_id, policy, updated_at) VALUES ($1, $2::jsonb, $3)
		ON CONFLICT (merchant_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = EXCLUDED.updated_at`,
		mid, string(doc), s.now())
	return interpretError("set policy", err)
}
