package domain

import (
	"encoding/json"
	"time"
)

// taskJSON is a task as the API and outbound webhooks show it.
type taskJSON struct {
	ID                    TaskID     `json:"id"`
	MerchantID            MerchantID `json:"merchant_id"`
	Type                  TaskType   `json:"type"`
	Status                TaskStatus `json:"status"`
	StripeEventID         string     `json:"stripe_event_id"`
	StripeCustomerID      string     `json:"stripe_customer_id"`
	StripeInvoiceID       string     `json:"stripe_invoice_id"`
	StripeSubscriptionID  string     `json:"stripe_subscription_id"`
	StripeChargeID        string     `json:"stripe_charge_id"`
	StripePaymentMethodID string     `json:"stripe_payment_method_id"`
	CustomerEmail         string     `json:"customer_email"`
	AmountDue             int64      `json:"amount_due"`
	Currency              string     `json:"currency"`
	HostedInvoiceURL      string     `json:"hosted_invoice_url"`
	Attempts              int        `json:"attempts"`
	RunAt                 string     `json:"run_at"`
	LastError             string     `json:"last_error"`
	DeclineCode           string     `json:"decline_code"`
	Reason                string     `json:"reason"`
	CreatedAt             string     `json:"created_at"`
	UpdatedAt             string     `json:"updated_at"`
}

// MarshalJSON writes the task as the API and outbound webhooks show it:
// snake_case names, times in RFC 3339 (UTC, fractional seconds only when
// there are any).
func (t Task) MarshalJSON() ([]byte, error) {
	return json.Marshal(taskJSON{
		ID: t.ID, MerchantID: t.MerchantID, Type: t.Type, Status: t.Status,
		StripeEventID: t.StripeEventID, StripeCustomerID: t.StripeCustomerID,
		StripeInvoiceID: t.StripeInvoiceID, StripeSubscriptionID: t.StripeSubscriptionID,
		StripeChargeID: t.StripeChargeID, StripePaymentMethodID: t.StripePaymentMethodID, CustomerEmail: t.CustomerEmail,
		AmountDue: t.AmountDue, Currency: t.Currency, HostedInvoiceURL: t.HostedInvoiceURL,
		Attempts: t.Attempts, RunAt: FormatTime(t.RunAt), LastError: t.LastError, DeclineCode: t.DeclineCode,
		Reason: t.Reason, CreatedAt: FormatTime(t.CreatedAt), UpdatedAt: FormatTime(t.UpdatedAt),
	})
}

// FormatTime writes a time as recoup's JSON does: RFC 3339 in UTC, with
// fractional seconds only when there are any.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// OutboundPayload is the body of an outbound message:
// {"type", "timestamp", "data"}.
func OutboundPayload(eventType string, at time.Time, data any) ([]byte, error) {
	return json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{eventType, FormatTime(at), data})
}

// RecoveredInvoice is the data of an invoice.recovered message.
type RecoveredInvoice struct {
	InvoiceID string `json:"invoice_id"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
}
