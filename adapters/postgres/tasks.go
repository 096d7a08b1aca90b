package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/domain"
)

// taskRow is a row of the tasks table.
type taskRow struct {
	bun.BaseModel `bun:"table:tasks,alias:tasks"`

	ID                   string     `bun:"id,pk"`
	MerchantID           string     `bun:"merchant_id"`
	Type                 string     `bun:"type"`
	Status               string     `bun:"status"`
	StripeEventID        string     `bun:"stripe_event_id"`
	StripeCustomerID     string     `bun:"stripe_customer_id"`
	StripeInvoiceID      string     `bun:"stripe_invoice_id"`
	StripeSubscriptionID string     `bun:"stripe_subscription_id"`
	StripeChargeID       string     `bun:"stripe_charge_id"`
	CustomerEmail        string     `bun:"customer_email"`
	AmountDue            int64      `bun:"amount_due"`
	Currency             string     `bun:"currency"`
	HostedInvoiceURL     string     `bun:"hosted_invoice_url"`
	InvoiceAttempt       int        `bun:"invoice_attempt"`
	Attempts             int        `bun:"attempts"`
	RunAt                time.Time  `bun:"run_at"`
	LeaseUntil           *time.Time `bun:"lease_until"`
	LastError            string     `bun:"last_error"`
	CreatedAt            time.Time  `bun:"created_at"`
	UpdatedAt            time.Time  `bun:"updated_at"`
}

// taskColumns is what every task query returns, named so that a column
// added by a later migration does not break older readers.
const taskColumns = `tasks.id, tasks.merchant_id, tasks.type, tasks.status,
	tasks.stripe_event_id, tasks.stripe_customer_id, tasks.stripe_invoice_id,
	tasks.stripe_subscription_id, tasks.stripe_charge_id, tasks.customer_email,
	tasks.amount_due, tasks.currency, tasks.hosted_invoice_url, tasks.invoice_attempt,
	tasks.attempts, tasks.run_at, tasks.lease_until, tasks.last_error,
	tasks.created_at, tasks.updated_at`

func rowFromTask(t domain.Task) taskRow {
	return taskRow{
		ID: string(t.ID), MerchantID: string(t.MerchantID), Type: string(t.Type), Status: string(t.Status),
		StripeEventID: t.StripeEventID, StripeCustomerID: t.StripeCustomerID, StripeInvoiceID: t.StripeInvoiceID,
		StripeSubscriptionID: t.StripeSubscriptionID, StripeChargeID: t.StripeChargeID, CustomerEmail: t.CustomerEmail,
		AmountDue: t.AmountDue, Currency: t.Currency, HostedInvoiceURL: t.HostedInvoiceURL,
		InvoiceAttempt: t.InvoiceAttempt, Attempts: t.Attempts, RunAt: t.RunAt, LastError: t.LastError,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
}

func (r taskRow) task() domain.Task {
	return domain.Task{
		ID: domain.TaskID(r.ID), MerchantID: domain.MerchantID(r.MerchantID),
		Type: domain.TaskType(r.Type), Status: domain.TaskStatus(r.Status),
		StripeEventID: r.StripeEventID, StripeCustomerID: r.StripeCustomerID, StripeInvoiceID: r.StripeInvoiceID,
		StripeSubscriptionID: r.StripeSubscriptionID, StripeChargeID: r.StripeChargeID, CustomerEmail: r.CustomerEmail,
		AmountDue: r.AmountDue, Currency: r.Currency, HostedInvoiceURL: r.HostedInvoiceURL,
		InvoiceAttempt: r.InvoiceAttempt, Attempts: r.Attempts, RunAt: r.RunAt.UTC(), LastError: r.LastError,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func tasksFromRows(rows []taskRow) []domain.Task {
	out := make([]domain.Task, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.task())
	}
	return out
}

// merchantParam checks a merchant id before it reaches a uuid column: an
// empty or malformed one is the caller's mistake, not a database error.
func merchantParam(m domain.MerchantID) (string, error) {
	if m == "" {
		return "", fmt.Errorf("%w: empty merchant", domain.ErrInvalid)
	}
	id, err := domain.ParseUUID(string(m))
	if err != nil {
		return "", fmt.Errorf("merchant id: %w", err)
	}
	return id, nil
}

// taskIDParam reports whether id can name a row at all; a malformed id
// names none (ErrNotFound), whereas the database would reject it.
func taskIDParam(id domain.TaskID) (string, bool) {
	s, err := domain.ParseUUID(string(id))
	return s, err == nil
}

// taskRepo is the tenant-scoped task repository on a connection pool or a
// transaction. Every statement but Exists has merchant_id in its WHERE
// clause (or, for inserts, in the row).
type taskRepo struct {
	db bun.IDB
}

// Schedule inserts the tasks one statement each, each with the ON CONFLICT
// clause of its rule, so that concurrent events for one invoice neither
// fail nor duplicate: the partial unique index decides, and a statement
// that meets an uncommitted conflicting row waits for its transaction.
func (r taskRepo) Schedule(ctx context.Context, merchant domain.MerchantID, tasks []domain.Task) ([]domain.Task, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("schedule tasks: %w", err)
	}
	stored := make([]domain.Task, 0, len(tasks))
	for _, t := range tasks {
		if err := checkNewTask(t, merchant); err != nil {
			return nil, fmt.Errorf("schedule task %s: %w", t.ID, err)
		}
		row := rowFromTask(t)
		row.MerchantID = mid
		if t.Status == domain.StatusRunning {
			// A task stored as running has no worker: its lease has
			// always expired, so the next claim takes it over.
			row.LeaseUntil = new(time.Time{})
		}
		q := r.db.NewInsert().Model(&row)
		switch {
		case t.Type == domain.TypeNotifyPaymentFailed:
			q = q.On(`CONFLICT (merchant_id, stripe_invoice_id, invoice_attempt)
				WHERE type = 'notify_payment_failed' DO NOTHING`)
		case t.Type == domain.TypeRetryPayment && row.Status == string(domain.StatusPending):
			// The pending retry of an earlier attempt takes the new
			// schedule and event and keeps its id; a retry of the same
			// or an older attempt changes nothing.
			q = q.On(`CONFLICT (merchant_id, stripe_invoice_id)
				WHERE type = 'retry_payment' AND status = 'pending' DO UPDATE`).
				Set("run_at = EXCLUDED.run_at").
				Set("stripe_event_id = EXCLUDED.stripe_event_id").
				Set("invoice_attempt = EXCLUDED.invoice_attempt").
				Set("updated_at = EXCLUDED.updated_at").
				Where("tasks.invoice_attempt < EXCLUDED.invoice_attempt")
		}
		var got []taskRow
		if err := q.Returning(taskColumns).Scan(ctx, &got); err != nil {
			return nil, interpretError("schedule task "+string(t.ID), err)
		}
		stored = append(stored, tasksFromRows(got)...)
	}
	return stored, nil
}

func checkNewTask(t domain.Task, merchant domain.MerchantID) error {
	if t.MerchantID != merchant {
		return fmt.Errorf("%w: task belongs to merchant %q, not %q", domain.ErrInvalid, t.MerchantID, merchant)
	}
	if _, err := domain.ParseTaskID(string(t.ID)); err != nil {
		return err
	}
	switch t.Type {
	case domain.TypeRetryPayment, domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyChargeFailed:
	default:
		return fmt.Errorf("%w: unknown task type %q", domain.ErrInvalid, t.Type)
	}
	if !t.Status.Valid() {
		return fmt.Errorf("%w: unknown task status %q", domain.ErrInvalid, t.Status)
	}
	return nil
}

// CancelPending cancels the merchant's pending tasks of one invoice or one
// subscription in one statement.
func (r taskRepo) CancelPending(ctx context.Context, merchant domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("cancel tasks: %w", err)
	}
	q := r.db.NewUpdate().Model((*taskRow)(nil)).
		Set("status = ?", domain.StatusCancelled).
		Set("updated_at = ?", now).
		Where("merchant_id = ?", mid).
		Where("status = ?", domain.StatusPending)
	switch {
	case sel.InvoiceID != "" && sel.SubscriptionID == "":
		q = q.Where("stripe_invoice_id = ?", sel.InvoiceID)
	case sel.SubscriptionID != "" && sel.InvoiceID == "":
		q = q.Where("stripe_subscription_id = ?", sel.SubscriptionID)
	default:
		return nil, fmt.Errorf("cancel tasks: %w: name exactly one of invoice and subscription", domain.ErrInvalid)
	}
	var ids []string
	if err := q.Returning("tasks.id").Scan(ctx, &ids); err != nil {
		return nil, interpretError("cancel tasks", err)
	}
	slices.Sort(ids) // a stable answer, whatever order the rows were updated in
	out := make([]domain.TaskID, 0, len(ids))
	for _, id := range ids {
		out = append(out, domain.TaskID(id))
	}
	return out, nil
}

// List reads one page by keyset: the row comparison on (created_at, id)
// and the ORDER BY match the indexes tasks_merchant_created and
// tasks_merchant_status_created, so a page costs an index range scan of
// limit+1 entries wherever it starts.
func (r taskRepo) List(ctx context.Context, merchant domain.MerchantID, f domain.TaskFilter) (domain.TaskPage, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.TaskPage{}, fmt.Errorf("list tasks: %w", err)
	}
	// The use case validates the limit; here it only bounds the work.
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultPageSize
	}
	limit = min(limit, domain.MaxPageSize)
	q := r.db.NewSelect().ColumnExpr(taskColumns).TableExpr("tasks").
		Where("merchant_id = ?", mid)
	if f.Status != "" {
		if !f.Status.Valid() {
			return domain.TaskPage{}, fmt.Errorf("list tasks: %w: unknown status %q", domain.ErrInvalid, f.Status)
		}
		q = q.Where("status = ?", f.Status)
	}
	if f.After != nil {
		after, ok := taskIDParam(f.After.ID)
		if !ok {
			return domain.TaskPage{}, fmt.Errorf("list tasks: %w: bad cursor", domain.ErrInvalid)
		}
		q = q.Where("(created_at, id) < (?::timestamptz, ?::uuid)", f.After.CreatedAt, after)
	}
	var rows []taskRow
	if err := q.OrderExpr("created_at DESC, id DESC").Limit(int64(limit)+1).Scan(ctx, &rows); err != nil {
		return domain.TaskPage{}, interpretError("list tasks", err)
	}
	page := domain.TaskPage{}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		page.Next = &domain.TaskCursor{CreatedAt: last.CreatedAt.UTC(), ID: domain.TaskID(last.ID)}
	}
	page.Tasks = tasksFromRows(rows)
	return page, nil
}

// Get reads the merchant's task.
func (r taskRepo) Get(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) (domain.Task, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.Task{}, fmt.Errorf("get task: %w", err)
	}
	tid, ok := taskIDParam(id)
	if !ok {
		return domain.Task{}, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	var row taskRow
	err = r.db.NewSelect().ColumnExpr(taskColumns).TableExpr("tasks").
		Where("merchant_id = ?", mid).Where("id = ?", tid).
		Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Task{}, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Task{}, interpretError("get task "+string(id), err)
	}
	return row.task(), nil
}

// Retry is one conditional UPDATE: the status test and the change are the
// same statement, so no concurrent change slips between them. Only when it
// changes nothing does a second read choose between ErrNotFound and
// ErrConflict.
func (r taskRepo) Retry(ctx context.Context, merchant domain.MerchantID, id domain.TaskID, now time.Time) (domain.Task, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.Task{}, fmt.Errorf("retry task: %w", err)
	}
	tid, ok := taskIDParam(id)
	if !ok {
		return domain.Task{}, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	var rows []taskRow
	err = r.db.NewUpdate().Model((*taskRow)(nil)).
		Set("status = ?", domain.StatusPending).
		Set("run_at = ?", now).
		Set("lease_until = NULL").
		Set("updated_at = ?", now).
		Where("merchant_id = ?", mid).Where("id = ?", tid).
		Where("status IN (?, ?)", domain.StatusFailed, domain.StatusCancelled).
		Returning(taskColumns).
		Scan(ctx, &rows)
	if err != nil {
		// A unique violation here is a retry_payment whose invoice has
		// another pending retry already.
		return domain.Task{}, interpretError("retry task "+string(id), err)
	}
	if len(rows) == 1 {
		return rows[0].task(), nil
	}
	return domain.Task{}, r.explainNoChange(ctx, mid, id, tid, "retry", "it is neither failed nor cancelled")
}

// Delete is one conditional DELETE; see Retry.
func (r taskRepo) Delete(ctx context.Context, merchant domain.MerchantID, id domain.TaskID) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("delete task: %w", err)
	}
	tid, ok := taskIDParam(id)
	if !ok {
		return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	res, err := r.db.NewDelete().Model((*taskRow)(nil)).
		Where("merchant_id = ?", mid).Where("id = ?", tid).
		Where("status <> ?", domain.StatusRunning).
		Exec(ctx)
	if err != nil {
		return interpretError("delete task "+string(id), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return interpretError("delete task "+string(id), err)
	}
	if n == 1 {
		return nil
	}
	return r.explainNoChange(ctx, mid, id, tid, "delete", "it is running")
}

// explainNoChange tells why a conditional statement on the merchant's task
// changed nothing: the merchant has no such task, or it is in the wrong
// status. It only chooses the error; the decision was the statement's.
func (r taskRepo) explainNoChange(ctx context.Context, mid string, id domain.TaskID, tid, verb, why string) error {
	exists, err := r.db.NewSelect().TableExpr("tasks").
		Where("merchant_id = ?", mid).Where("id = ?", tid).
		Exists(ctx)
	if err != nil {
		return interpretError(verb+" task "+string(id), err)
	}
	if !exists {
		return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	return fmt.Errorf("%s task %s: %w: %s", verb, id, domain.ErrConflict, why)
}

// CountByStatus counts the merchant's tasks by status; statuses without
// tasks are absent.
func (r taskRepo) CountByStatus(ctx context.Context, merchant domain.MerchantID) (map[domain.TaskStatus]int, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", err)
	}
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := r.db.NewSelect().TableExpr("tasks").
		ColumnExpr("status").ColumnExpr("count(*) AS n").
		Where("merchant_id = ?", mid).
		GroupExpr("status").
		Scan(ctx, &rows); err != nil {
		return nil, interpretError("count tasks", err)
	}
	out := make(map[domain.TaskStatus]int, len(rows))
	for _, row := range rows {
		out[domain.TaskStatus(row.Status)] = row.N
	}
	return out, nil
}

// Exists is the one unscoped read; it answers only whether the id is
// taken.
func (r taskRepo) Exists(ctx context.Context, id domain.TaskID) (bool, error) {
	tid, ok := taskIDParam(id)
	if !ok {
		return false, nil
	}
	exists, err := r.db.NewSelect().TableExpr("tasks").Where("id = ?", tid).Exists(ctx)
	if err != nil {
		return false, interpretError("look up task "+string(id), err)
	}
	return exists, nil
}
