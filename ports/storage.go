package ports

import (
	"context"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// EventLocker takes the idempotency lock of a Stripe event. It is only
// reachable inside a unit of work (Tx), so the lock commits or rolls back
// with the event's effects.
type EventLocker interface {
	// AttemptEventLock records eventID as processed by the current unit of
	// work. It returns true when this unit of work now holds the lock, and
	// false when the event was already processed (committed). While another
	// unit of work holds the lock in flight, it waits for that one's outcome:
	// false if it commits; if it rolls back, exactly one waiter gets true.
	// It returns ctx's error if the wait is cancelled, ErrUnavailable (wrapped)
	// if storage cannot be reached, ErrInvalid for an empty id or one that
	// holds a NUL character.
	AttemptEventLock(ctx context.Context, eventID string) (bool, error)
}

// TenantTaskRepository stores tasks. Every method but Exists takes the
// merchant and reads or writes that merchant's tasks only: the merchant is
// part of every query, never checked after one. An empty merchant is
// ErrInvalid.
type TenantTaskRepository interface {
	// Schedule stores new tasks for merchant (their MerchantID must be
	// merchant) and returns those that were stored, applying the "at most
	// one" rules:
	//   - a notify_payment_failed, a notify_action_required or a
	//     notify_reminder whose (invoice, InvoiceAttempt) already has one
	//     of its type is not stored again;
	//   - a notify_charge_failed whose charge (when it names one) already
	//     has one is not stored again;
	//   - a notify_card_expiring whose (payment method, InvoiceAttempt —
	//     the card's expiry month as yyyymm) already has one, whatever its
	//     status, is not stored again;
	//   - a retry_payment for an invoice that has a pending retry_payment
	//     is not stored: that one takes its schedule, event, attempt and
	//     decline code, keeps its id, and is returned instead;
	//   - an end_dunning for an invoice that has one not cancelled is not
	//     stored: a pending one takes its schedule and is returned
	//     instead, any other (running or ended) stays as it is.
	// A task whose text holds a NUL character, which PostgreSQL's text
	// cannot, is ErrInvalid, and nothing of the call is stored.
	Schedule(ctx context.Context, merchant domain.MerchantID, tasks []domain.Task) ([]domain.Task, error)
	// CancelPending makes the merchant's pending tasks that match sel
	// cancelled, with sel.Reason, and returns their ids.
	CancelPending(ctx context.Context, merchant domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error)
	// List returns one page of the merchant's tasks, newest first (by
	// CreatedAt, then ID, descending), starting after filter.After.
	List(ctx context.Context, merchant domain.MerchantID, filter domain.TaskFilter) (domain.TaskPage, error)
	// Get returns the merchant's task id; ErrNotFound if the merchant has no
	// such task.
	Get(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) (domain.Task, error)
	// Retry makes the merchant's failed or cancelled task pending again, due
	// at now, with no reason, and returns it; ErrNotFound if the merchant
	// has no such task, ErrConflict if it is in another status, or if it
	// would break an "at most one" rule (a second pending retry_payment of
	// its invoice, a second end_dunning not cancelled).
	Retry(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, now time.Time) (domain.Task, error)
	// Delete removes the merchant's task; ErrNotFound if the merchant has no
	// such task, ErrConflict while it is running.
	Delete(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) error
	// CountByStatus counts the merchant's tasks in each status.
	CountByStatus(ctx context.Context, merchant domain.MerchantID) (map[domain.TaskStatus]int, error)
	// Exists reports whether a task with this id exists for any merchant.
	// It is the one unscoped read, it reveals nothing but a bool, and it is
	// used only after a scoped query found nothing, to tell 403 from 404.
	Exists(ctx context.Context, id domain.TaskID) (bool, error)
}

// InvoiceLedger keeps recoup's record of each merchant's failed invoices:
// what the dunning policy plans from, and what the recovery figures count.
type InvoiceLedger interface {
	// Record merges fact into the merchant's record of fact.InvoiceID,
	// creating it, exactly as domain.InvoiceRecord.Apply does, and returns
	// the record. In a unit of work the record stays held until it ends:
	// a concurrent Record of the same invoice waits for it, so that no
	// fact is lost. An empty invoice id, or text with a NUL character, is
	// ErrInvalid.
	Record(ctx context.Context, merchant domain.MerchantID, fact domain.InvoiceFact) (domain.InvoiceRecord, error)
	// Invoice returns the merchant's record of an invoice; ErrNotFound if
	// there is none.
	Invoice(ctx context.Context, merchant domain.MerchantID, invoiceID string) (domain.InvoiceRecord, error)
	// OpenFailed returns the merchant's records of the customer's invoices
	// that failed (a failure is known) and are still open, oldest first
	// failure first.
	OpenFailed(ctx context.Context, merchant domain.MerchantID, customerID string) ([]domain.InvoiceRecord, error)
	// Recovery sums, by currency, the amount due of the merchant's
	// invoices that failed and the amount paid of those recovered.
	Recovery(ctx context.Context, merchant domain.MerchantID) (map[string]domain.CurrencyRecovery, error)
	// Figures returns the merchant's recovery figures over the UTC days
	// of days, exactly as domain.FiguresOf computes them from its records
	// from days.From to days.End(): an invoice that failed counts on the
	// day of its FirstFailedAt, one recovered (paid after a failure) on
	// the day of its ClosedAt; rows by UTC day and currency, sorted;
	// decline codes as recorded, UnknownDeclineCode for none; every
	// source, zeros included. When days.To is before days.From, nothing
	// counts.
	Figures(ctx context.Context, merchant domain.MerchantID, days domain.DayRange) (domain.RecoveryFigures, error)
}

// SumFolder is storage that keeps running sums (the recovery figures, the
// task counts) as the sums so far plus a log of the changes since, which
// its reads add up. The workers call FoldSums every few seconds; storage
// that counts at each read does not implement it.
type SumFolder interface {
	// FoldSums folds the log of changes into the sums, which keeps reads
	// fast. Reads are exact whether it ran or not, and folds that run at
	// once, in one process or several, fold each change once.
	FoldSums(ctx context.Context) error
}

// PolicyStore keeps each merchant's dunning policy.
type PolicyStore interface {
	// Policy returns the merchant's policy, or domain.DefaultDunningPolicy
	// if it set none.
	Policy(ctx context.Context, merchant domain.MerchantID) (domain.DunningPolicy, error)
	// SetPolicy stores the merchant's policy, replacing any earlier one;
	// the *domain.PolicyError of p.Validate (ErrInvalid) if it is not
	// valid, and nothing changes then.
	SetPolicy(ctx context.Context, merchant domain.MerchantID, p domain.DunningPolicy) error
}

// EmailLog counts the emails each merchant sends each customer, for the
// weekly cap of a merchant's policy.
type EmailLog interface {
	// ReserveEmail records an email of the merchant to customer (the
	// customer's id, or its address when it has none) at `at`, if fewer
	// than max are recorded after at-window (later ones included: workers
	// read their clocks before they meet here), and reports whether it
	// did. Concurrent reservations for one customer never exceed max,
	// also across processes.
	ReserveEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time, window time.Duration, max int) (bool, error)
	// ReleaseEmail removes one reservation made at `at` (its email could
	// not be sent); with none it does nothing.
	ReleaseEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time) error
	// PruneEmails deletes up to batch reservations made before cutoff,
	// every merchant's, and returns how many it deleted; callers repeat
	// until it returns < batch. A reservation older than the longest
	// window any caller counts in can never count again.
	PruneEmails(ctx context.Context, cutoff time.Time, batch int) (int, error)
}

// Leases let one process at a time do a named piece of work (a merchant's
// reconciliation), across processes.
type Leases interface {
	// AcquireLease gives the lease named name to holder until `until`,
	// unless another holder has it unexpired at now, and reports whether
	// holder has it. A holder may renew its own lease.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	// ReleaseLease gives up holder's lease of name; if holder does not
	// hold it, nothing changes.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Tx is what a unit of work may touch: everything it does commits or rolls
// back together.
type Tx interface {
	// Events takes event locks in this unit of work.
	Events() EventLocker
	// Tasks reads and writes tasks in this unit of work.
	Tasks() TenantTaskRepository
	// Ledger records invoices' facts in this unit of work.
	Ledger() InvoiceLedger
	// Policies reads merchants' policies in this unit of work.
	Policies() PolicyStore
	// Queue records task runs in this unit of work, with the changes
	// their outcome makes (a worker's Finish and its re-plan together).
	Queue() TaskQueue
	// Outbox enqueues outbound messages with the change they report.
	Outbox() Outbox
}

// UnitOfWork runs work atomically.
type UnitOfWork interface {
	// InTx runs fn in one transaction and commits if fn returns nil. If fn
	// returns an error (or panics), everything fn did is rolled back,
	// including any event lock it took, and InTx returns that error. A
	// failed commit is returned wrapped in ErrUnavailable.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// MerchantDirectory stores merchants and their API keys.
type MerchantDirectory interface {
	// CreateMerchant stores a merchant with its first API key;
	// ErrConflict if its Stripe account is already bound to a merchant,
	// ErrInvalid if its text holds a NUL character.
	CreateMerchant(ctx context.Context, m domain.Merchant, key domain.APIKey) error
	// MerchantByID returns a merchant; ErrNotFound if there is none.
	MerchantByID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error)
	// MerchantByStripeAccount returns the merchant bound to a connected
	// account; ErrNotFound if there is none.
	MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error)
	// MerchantByAPIKey returns the owner of the unrevoked key with this
	// prefix, after comparing hash with the stored hash in constant time;
	// ErrNotFound if there is no such key or the hash differs.
	MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error)
	// AddAPIKey stores another key for key.MerchantID; ErrNotFound if there
	// is no such merchant, ErrConflict if the prefix is taken.
	AddAPIKey(ctx context.Context, key domain.APIKey) error
	// ListMerchants returns up to limit merchants whose ids sort after
	// `after` (all from the start when it is empty), in id order.
	ListMerchants(ctx context.Context, after domain.MerchantID, limit int) ([]domain.Merchant, error)
	// RevokeAPIKey revokes the merchant's key with this prefix; ErrNotFound
	// if the merchant has no such unrevoked key.
	RevokeAPIKey(ctx context.Context, merchant domain.MerchantID, prefix string, at time.Time) error
}

// A Claim is a task ClaimDue marked running, with what its run is decided
// by, read as the task was claimed, so that a run needs no reads of its
// own before it acts: the merchant's dunning policy (the default when it
// stored none) and the record of the task's invoice (nil when the task
// names no invoice or the ledger has no record of it). Both are copies the
// caller owns.
type Claim struct {
	domain.Task
	Policy  domain.DunningPolicy
	Invoice *domain.InvoiceRecord
}

// TaskQueue is the worker's view of tasks: across merchants, because the
// worker serves them all, yet every write after the claim names the
// merchant and the claim's attempt.
type TaskQueue interface {
	// ClaimDue marks up to limit due tasks running and returns them with
	// Attempts incremented. Due means pending with RunAt <= now, or running
	// with a lease that expired before now (its worker died). The lease
	// lasts until now+lease. No task is handed to two callers at once, also
	// across processes. Each comes with what its run decides by, read by
	// the claim itself (see Claim).
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Claim, error)
	// Finish records the end of the run that claimed the merchant's task
	// with this attempt: its status, last error, reason, decline code (when
	// res sets one) and, back to pending, its new RunAt; ErrConflict if
	// that claim no longer holds (the lease expired and another worker
	// claimed it, or it was changed), or if a retry_payment would go back
	// to pending beside another pending retry_payment of its invoice.
	// Nothing changes on ErrConflict. When it records the outcome, it
	// enqueues res.Messages with it, as Outbox.Enqueue does.
	Finish(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, attempt int, res domain.TaskResult) error
	// Backlog reports how many tasks are due at now and the oldest due
	// RunAt (zero if none).
	Backlog(ctx context.Context, now time.Time) (count int, oldest time.Time, err error)
}

// EventRetention prunes old idempotency locks.
type EventRetention interface {
	// PruneEvents deletes up to batch lock rows recorded before cutoff and
	// returns how many it deleted; callers repeat until it returns < batch.
	PruneEvents(ctx context.Context, cutoff time.Time, batch int) (int, error)
}

// Storage is everything recoup keeps, as one adapter provides it.
type Storage interface {
	UnitOfWork
	// Tasks reads and writes tasks outside any unit of work: each call
	// commits on its own.
	Tasks() TenantTaskRepository
	// Ledger reads and records invoices' facts outside any unit of work.
	Ledger() InvoiceLedger
	// Policies reads and stores merchants' policies.
	Policies() PolicyStore
	// Emails counts the emails sent to each customer.
	Emails() EmailLog
	// Leases hands out named leases.
	Leases() Leases
	// Endpoints stores merchants' webhook endpoints.
	Endpoints() WebhookEndpoints
	// Outbox enqueues outbound messages outside any unit of work, and
	// hands them out for delivery.
	Outbox() Outbox
	// Merchants is the merchant directory.
	Merchants() MerchantDirectory
	// Sessions stores the dashboard's sessions.
	Sessions() Sessions
	// Queue is the worker's view of tasks, across merchants.
	Queue() TaskQueue
	EventRetention
	// Ping reports whether storage is reachable (ErrUnavailable if not).
	Ping(ctx context.Context) error
}

// Sessions stores the dashboard's sessions, under the hash of their token.
type Sessions interface {
	// CreateSession stores s; ErrConflict if a session has its TokenHash,
	// ErrInvalid if it names no merchant or its CSRF token is empty or
	// holds a NUL character.
	CreateSession(ctx context.Context, s domain.Session) error
	// Session returns the session stored under hash if it expires after
	// now; ErrNotFound if there is none, it was deleted, or it has
	// expired.
	Session(ctx context.Context, hash domain.SessionHash, now time.Time) (domain.Session, error)
	// DeleteSession removes the session stored under hash; with none it
	// does nothing.
	DeleteSession(ctx context.Context, hash domain.SessionHash) error
	// PruneSessions deletes up to batch sessions that expired at or before
	// now and returns how many it deleted.
	PruneSessions(ctx context.Context, now time.Time, batch int) (int, error)
}
