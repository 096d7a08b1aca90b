package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// taskRow receives a row of the tasks table.
type taskRow struct {
	ID                   string
	MerchantID           string
	Type                 string
	Status               string
	StripeEventID        string
	StripeCustomerID     string
	StripeInvoiceID      string
	StripeSubscriptionID string
	StripeChargeID       string
	StripePaymentMethod  string
	CustomerEmail        string
	AmountDue            int64
	Currency             string
	HostedInvoiceURL     string
	InvoiceAttempt       int
	Attempts             int
	RunAt                time.Time
	LeaseUntil           *time.Time
	LastError            string
	DeclineCode          string
	Reason               string
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

// taskColumns is what every task query returns, in the order of
// taskRow.dest, named so that a column added by a later migration does not
// break older readers.
const taskColumns = `tasks.id, tasks.merchant_id, tasks.type, tasks.status,
	tasks.stripe_event_id, tasks.stripe_customer_id, tasks.stripe_invoice_id,
	tasks.stripe_subscription_id, tasks.stripe_charge_id, tasks.stripe_payment_method_id, tasks.customer_email,
	tasks.amount_due, tasks.currency, tasks.hosted_invoice_url, tasks.invoice_attempt,
	tasks.attempts, tasks.run_at, tasks.lease_until, tasks.last_error,
	tasks.decline_code, tasks.reason, tasks.created_at, tasks.updated_at`

// dest is where rows.Scan puts taskColumns.
func (r *taskRow) dest() []any {
	return []any{&r.ID, &r.MerchantID, &r.Type, &r.Status,
		&r.StripeEventID, &r.StripeCustomerID, &r.StripeInvoiceID,
		&r.StripeSubscriptionID, &r.StripeChargeID, &r.StripePaymentMethod, &r.CustomerEmail,
		&r.AmountDue, &r.Currency, &r.HostedInvoiceURL, &r.InvoiceAttempt,
		&r.Attempts, &r.RunAt, &r.LeaseUntil, &r.LastError,
		&r.DeclineCode, &r.Reason, &r.CreatedAt, &r.UpdatedAt}
}

// scanTask reads a row of taskColumns.
func scanTask(rows *sql.Rows) (domain.Task, error) {
	var r taskRow
	if err := rows.Scan(r.dest()...); err != nil {
		return domain.Task{}, err
	}
	return r.task(), nil
}

func (r taskRow) task() domain.Task {
	return domain.Task{
		ID: domain.TaskID(r.ID), MerchantID: domain.MerchantID(r.MerchantID),
		Type: domain.TaskType(r.Type), Status: domain.TaskStatus(r.Status),
		StripeEventID: r.StripeEventID, StripeCustomerID: r.StripeCustomerID, StripeInvoiceID: r.StripeInvoiceID,
		StripeSubscriptionID: r.StripeSubscriptionID, StripeChargeID: r.StripeChargeID,
		StripePaymentMethodID: r.StripePaymentMethod, CustomerEmail: r.CustomerEmail,
		AmountDue: r.AmountDue, Currency: r.Currency, HostedInvoiceURL: r.HostedInvoiceURL,
		InvoiceAttempt: r.InvoiceAttempt, Attempts: r.Attempts, RunAt: r.RunAt.UTC(), LastError: r.LastError,
		DeclineCode: r.DeclineCode, Reason: r.Reason, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
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
	db querier
	// store is set outside a unit of work, where each call is one of its
	// own: a call of several statements runs them in a transaction.
	store *Store
}

func checkNewTask(t domain.Task, merchant domain.MerchantID) error {
	if t.MerchantID != merchant {
		return fmt.Errorf("%w: task belongs to merchant %q, not %q", domain.ErrInvalid, t.MerchantID, merchant)
	}
	if _, err := domain.ParseTaskID(string(t.ID)); err != nil {
		return err
	}
	if !t.Type.Valid() {
		return fmt.Errorf("%w: unknown task type %q", domain.ErrInvalid, t.Type)
	}
	if !t.Status.Valid() {
		return fmt.Errorf("%w: unknown task status %q", domain.ErrInvalid, t.Status)
	}
	return t.CheckText()
}

// Statements of CancelPending, one per selector. $5 lists the types to
// cancel, comma-separated, or is empty for every type: a text rather than
// an array, because statements sent through bun's formatter (sqlOf) would
// get a Go slice as JSON. The type is no column of the indexes these
// statements use (tasks_pending_invoice, tasks_pending_subscription), so
// the optional condition costs a generic plan nothing.
const (
	cancelByInvoiceSQL = `
		UPDATE tasks SET status = 'cancelled', reason = $4, updated_at = $2
		WHERE merchant_id = $1 AND status = 'pending' AND stripe_invoice_id = $3
			AND ($5::text = '' OR type = ANY (string_to_array($5::text, ',')))
		RETURNING id`
	cancelBySubscriptionSQL = `
		UPDATE tasks SET status = 'cancelled', reason = $4, updated_at = $2
		WHERE merchant_id = $1 AND status = 'pending' AND stripe_subscription_id = $3
			AND ($5::text = '' OR type = ANY (string_to_array($5::text, ',')))
		RETURNING id`
)

// CancelPending cancels the merchant's pending tasks of one invoice or one
// subscription, of the selector's types, in one statement.
func (r taskRepo) CancelPending(ctx context.Context, merchant domain.MerchantID, sel domain.CancelSelector, now time.Time) ([]domain.TaskID, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("cancel tasks: %w", err)
	}
	var query, key string
	switch {
	case sel.InvoiceID != "" && sel.SubscriptionID == "":
		query, key = cancelByInvoiceSQL, sel.InvoiceID
	case sel.SubscriptionID != "" && sel.InvoiceID == "":
		query, key = cancelBySubscriptionSQL, sel.SubscriptionID
	default:
		return nil, fmt.Errorf("cancel tasks: %w: name exactly one of invoice and subscription", domain.ErrInvalid)
	}
	types := make([]string, len(sel.Types))
	for i, typ := range sel.Types {
		// A valid type has no comma, so the list splits back as written.
		if !typ.Valid() {
			return nil, fmt.Errorf("cancel tasks: %w: unknown task type %q", domain.ErrInvalid, typ)
		}
		types[i] = string(typ)
	}
	if !domain.StorableText(key, sel.Reason) {
		return nil, fmt.Errorf("cancel tasks: %w: text with a NUL character", domain.ErrInvalid)
	}
	ids, err := queryAll(ctx, r.db, scanTaskID, query, mid, now, key, sel.Reason, strings.Join(types, ","))
	if err != nil {
		return nil, interpretError("cancel tasks", err)
	}
	slices.Sort(ids) // a stable answer, whatever order the rows were updated in
	if ids == nil {
		ids = []domain.TaskID{}
	}
	return ids, nil
}

func scanTaskID(rows *sql.Rows) (domain.TaskID, error) {
	var id string
	err := rows.Scan(&id)
	return domain.TaskID(id), err
}

// listSQL is List's statement for a filter with or without a status and a
// cursor: four texts, each prepared once per connection. One text with
// optional conditions, ($2 IS NULL OR status = $2), would cost the index of
// each condition in the generic plan PostgreSQL settles on for a prepared
// statement.
func listSQL(byStatus, afterCursor bool) string {
	var b strings.Builder
	b.WriteString("SELECT " + taskColumns + "\n\t\tFROM tasks\n\t\tWHERE merchant_id = $1")
	n := 2
	if byStatus {
		fmt.Fprintf(&b, " AND status = $%d", n)
		n++
	}
	if afterCursor {
		fmt.Fprintf(&b, " AND (created_at, id) < ($%d::timestamptz, $%d::uuid)", n, n+1)
		n += 2
	}
	fmt.Fprintf(&b, "\n\t\tORDER BY created_at DESC, id DESC\n\t\tLIMIT $%d", n)
	return b.String()
}

// List reads one page by keyset: the row comparison on (created_at, id)
// and the ORDER BY match the indexes tasks_merchant_created and
// tasks_merchant_status_created, so a page costs an index range scan of
// limit+1 entries wherever it starts.
func (r taskRepo) List(ctx context.Context, merchant domain.MerchantID, f domain.TaskFilter) (domain.TaskPage, error) {
	query, args, limit, err := listQuery(merchant, f)
	if err != nil {
		return domain.TaskPage{}, err
	}
	tasks, err := queryAll(ctx, r.db, scanTask, query, args...)
	if err != nil {
		return domain.TaskPage{}, interpretError("list tasks", err)
	}
	page := domain.TaskPage{Tasks: tasks}
	if len(tasks) > limit {
		page.Tasks = tasks[:limit]
		last := page.Tasks[limit-1]
		page.Next = &domain.TaskCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if page.Tasks == nil {
		page.Tasks = []domain.Task{}
	}
	return page, nil
}

// listQuery returns List's statement and arguments for the filter, and the
// page size.
func listQuery(merchant domain.MerchantID, f domain.TaskFilter) (string, []any, int, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return "", nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	// The use case validates the limit; here it only bounds the work.
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultPageSize
	}
	limit = min(limit, domain.MaxPageSize)
	args := []any{mid}
	if f.Status != "" {
		if !f.Status.Valid() {
			return "", nil, 0, fmt.Errorf("list tasks: %w: unknown status %q", domain.ErrInvalid, f.Status)
		}
		args = append(args, string(f.Status))
	}
	if f.After != nil {
		after, ok := taskIDParam(f.After.ID)
		if !ok {
			return "", nil, 0, fmt.Errorf("list tasks: %w: bad cursor", domain.ErrInvalid)
		}
		args = append(args, f.After.CreatedAt, after)
	}
	args = append(args, limit+1)
	return listSQL(f.Status != "", f.After != nil), args, limit, nil
}

const getTaskSQL = `SELECT ` + taskColumns + ` FROM tasks WHERE merchant_id = $1 AND id = $2`

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
	err = r.db.QueryRowContext(ctx, getTaskSQL, mid, tid).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Task{}, fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Task{}, interpretError("get task "+string(id), err)
	}
	return row.task(), nil
}

const retryTaskSQL = `
	UPDATE tasks SET status = 'pending', run_at = $3, lease_until = NULL, reason = '', updated_at = $3
	WHERE merchant_id = $1 AND id = $2 AND status IN ('failed', 'cancelled')
	RETURNING ` + taskColumns

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
	var row taskRow
	err = r.db.QueryRowContext(ctx, retryTaskSQL, mid, tid, now).Scan(row.dest()...)
	switch {
	case err == nil:
		return row.task(), nil
	case !errors.Is(err, sql.ErrNoRows):
		// A unique violation here is a retry_payment whose invoice has
		// another pending retry already, or a cancelled end_dunning whose
		// invoice has another one that is not cancelled.
		return domain.Task{}, interpretError("retry task "+string(id), err)
	}
	return domain.Task{}, explainNoChange(ctx, r.db, mid, id, tid, "retry", "it is neither failed nor cancelled")
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
	n, err := rowsAffected(ctx, r.db, `
		DELETE FROM tasks WHERE merchant_id = $1 AND id = $2 AND status <> 'running'`, mid, tid)
	if err != nil {
		return interpretError("delete task "+string(id), err)
	}
	if n == 1 {
		return nil
	}
	return explainNoChange(ctx, r.db, mid, id, tid, "delete", "it is running")
}

// explainNoChange tells why a conditional statement on the merchant's task
// changed nothing: the merchant has no such task, or it is in the wrong
// status. It only chooses the error; the decision was the statement's.
func explainNoChange(ctx context.Context, db querier, mid string, id domain.TaskID, tid, verb, why string) error {
	var exists bool
	err := db.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT FROM tasks WHERE merchant_id = $1 AND id = $2)`, mid, tid).Scan(&exists)
	if err != nil {
		return interpretError(verb+" task "+string(id), err)
	}
	if !exists {
		return fmt.Errorf("task %s: %w", id, domain.ErrNotFound)
	}
	return fmt.Errorf("%s task %s: %w: %s", verb, id, domain.ErrConflict, why)
}

// countByStatusSQL reads a merchant's task counts: of the ended tasks,
// the running sums and the changes not folded into them yet (see
// figures.go); of the pending and running ones, which are few and which
// every claim changes, a count of their ranges of
// tasks_merchant_status_created.
const countByStatusSQL = `
	SELECT status, sum(n)::bigint
	FROM (
		SELECT status, n FROM task_counts WHERE merchant_id = $1
		UNION ALL
		SELECT status, n FROM task_count_changes WHERE merchant_id = $1
		UNION ALL
		SELECT status, count(*) FROM tasks WHERE merchant_id = $1 AND status IN ('pending', 'running') GROUP BY status
	) AS c
	GROUP BY status`

// CountByStatus counts the merchant's tasks by status; statuses without
// tasks are absent.
func (r taskRepo) CountByStatus(ctx context.Context, merchant domain.MerchantID) (map[domain.TaskStatus]int, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", err)
	}
	type count struct {
		status string
		n      int
	}
	counts, err := queryAll(ctx, r.db, func(rows *sql.Rows) (count, error) {
		var c count
		err := rows.Scan(&c.status, &c.n)
		return c, err
	}, countByStatusSQL, mid)
	if err != nil {
		return nil, interpretError("count tasks", err)
	}
	out := make(map[domain.TaskStatus]int, len(counts))
	for _, c := range counts {
		if c.n > 0 {
			out[domain.TaskStatus(c.status)] = c.n
		}
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
	var exists bool
	if err := r.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM tasks WHERE id = $1)`, tid).Scan(&exists); err != nil {
		return false, interpretError("look up task "+string(id), err)
	}
	return exists, nil
}
