package domain

import (
	"fmt"
	"strings"
	"time"
)

// TaskID identifies a task (a UUID).
type TaskID string

// ParseTaskID validates an id taken from outside (a URL, a cursor).
func ParseTaskID(s string) (TaskID, error) {
	id, err := ParseUUID(s)
	if err != nil {
		return "", fmt.Errorf("task id: %w", err)
	}
	return TaskID(id), nil
}

// TaskStatus is where a task is in its life.
type TaskStatus string

// The task statuses a task goes through.
const (
	StatusPending   TaskStatus = "pending"
	StatusRunning   TaskStatus = "running"
	StatusSucceeded TaskStatus = "succeeded"
	StatusFailed    TaskStatus = "failed"
	StatusCancelled TaskStatus = "cancelled"
)

// TaskStatuses lists every status, in life order.
var TaskStatuses = []TaskStatus{StatusPending, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled}

// Valid reports whether s is one of TaskStatuses.
func (s TaskStatus) Valid() bool {
	for _, v := range TaskStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Retryable reports whether a merchant may send a task in this status back
// to pending.
func (s TaskStatus) Retryable() bool { return s == StatusFailed || s == StatusCancelled }

// TaskType is what a task does when it runs.
type TaskType string

// The task types: what a task does when it runs.
const (
	TypeRetryPayment         TaskType = "retry_payment"
	TypeNotifyPaymentFailed  TaskType = "notify_payment_failed"
	TypeNotifyActionRequired TaskType = "notify_action_required"
	TypeNotifyChargeFailed   TaskType = "notify_charge_failed"
	TypeNotifyReminder       TaskType = "notify_reminder"
	TypeNotifyCardExpiring   TaskType = "notify_card_expiring"
	TypeEndDunning           TaskType = "end_dunning"
)

// TaskTypes lists every task type.
var TaskTypes = []TaskType{TypeRetryPayment, TypeNotifyPaymentFailed, TypeNotifyActionRequired, TypeNotifyChargeFailed,
	TypeNotifyReminder, TypeNotifyCardExpiring, TypeEndDunning}

// Valid reports whether t is one of TaskTypes.
func (t TaskType) Valid() bool {
	for _, v := range TaskTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Task is one scheduled piece of dunning work for one merchant.
type Task struct {
	ID                   TaskID
	MerchantID           MerchantID
	Type                 TaskType
	Status               TaskStatus
	StripeEventID        string
	StripeCustomerID     string
	StripeInvoiceID      string
	StripeSubscriptionID string
	StripeChargeID       string
	// StripePaymentMethodID is the card of a notify_card_expiring.
	StripePaymentMethodID string
	CustomerEmail         string
	AmountDue             int64 // minor units
	Currency              string
	HostedInvoiceURL      string
	// InvoiceAttempt keys the "at most one" rules of some types: the
	// invoice's attempt_count for a notify_payment_failed or
	// notify_action_required, the invoice's attempts so far for a
	// retry_payment, the reminder's number for a notify_reminder, the
	// card's expiry month (yyyymm) for a notify_card_expiring.
	InvoiceAttempt int
	Attempts       int // executions so far
	RunAt          time.Time
	LastError      string
	// DeclineCode is the decline code of the failure the task is about,
	// or of its own declined attempt; empty when unknown.
	DeclineCode string
	// Reason says, in one short word (a Reason… constant), how the task
	// ended; empty while it has not.
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TaskFilter selects a page of one merchant's tasks, newest first.
type TaskFilter struct {
	Status TaskStatus // empty: every status
	Limit  int        // 1 to MaxPageSize
	After  *TaskCursor
}

// Page sizes of the task list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// TaskCursor is the keyset position after which a page starts: the last
// task of the previous page. Tasks are ordered by (CreatedAt, ID) descending.
type TaskCursor struct {
	CreatedAt time.Time
	ID        TaskID
}

// Before reports whether t sorts after the cursor in newest-first order,
// that is, whether it belongs to a later page.
func (c TaskCursor) Before(t Task) bool {
	if !t.CreatedAt.Equal(c.CreatedAt) {
		return t.CreatedAt.Before(c.CreatedAt)
	}
	return t.ID < c.ID
}

// NewerFirst orders tasks newest first, ties broken by id descending: the
// order of the task list and of its cursor.
func NewerFirst(a, b Task) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	switch {
	case a.ID > b.ID:
		return -1
	case a.ID < b.ID:
		return 1
	}
	return 0
}

// TaskPage is one page of a task list.
type TaskPage struct {
	Tasks []Task
	Next  *TaskCursor // nil on the last page
}

// TaskResult is how a claimed task's run ended.
type TaskResult struct {
	// Status is StatusSucceeded, StatusFailed, StatusCancelled, or
	// StatusPending to run again at RunAt.
	Status    TaskStatus
	RunAt     time.Time
	LastError string
	// Reason is how it ended (a Reason… constant); empty for a task that
	// goes back to pending.
	Reason string
	// DeclineCode, when set, replaces the task's.
	DeclineCode string
	At          time.Time
	// Messages report the outcome to the merchant's webhook endpoints
	// (task.succeeded, …): stored with it, or not at all.
	Messages []OutboundMessage
}

// StorableText reports whether every string can be kept as text by any
// storage: none may hold a NUL character, which PostgreSQL's text type
// cannot store. Adapters refuse such text with ErrInvalid, so that every
// adapter answers the same.
func StorableText(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// CheckText is ErrInvalid when one of the task's strings is not
// StorableText.
func (t Task) CheckText() error {
	if !StorableText(string(t.ID), string(t.MerchantID), string(t.Type), string(t.Status), t.StripeEventID,
		t.StripeCustomerID, t.StripeInvoiceID, t.StripeSubscriptionID, t.StripeChargeID, t.StripePaymentMethodID, t.CustomerEmail,
		t.Currency, t.HostedInvoiceURL, t.LastError, t.DeclineCode, t.Reason) {
		return fmt.Errorf("%w: task %s: text holds a NUL character", ErrInvalid, t.ID)
	}
	return nil
}
