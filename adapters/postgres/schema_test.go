package postgres_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// TestSchemaEnforcesRules writes rows around the adapter, as a buggy or
// foreign writer would, and checks that the database itself refuses what
// the rules forbid.
func TestSchemaEnforcesRules(t *testing.T) {
	db := newSchemaDB(t, pgtest.NewDatabase(t), 4)
	ctx := ctxTimeout(t)
	m1, m2 := domain.NewID(), domain.NewID()
	const insertTask = `INSERT INTO tasks (id, merchant_id, type, status, stripe_invoice_id, invoice_attempt, run_at, created_at, updated_at)
		VALUES (gen_random_uuid(), ?, ?, ?, ?, ?, now(), now(), now())`

	cases := []struct {
		name string
		args [][]any
		code string // SQLSTATE of the last statement; "" when it must succeed
	}{
		{
			name: "a second pending retry_payment for an invoice",
			args: [][]any{{m1, "retry_payment", "pending", "in_a", 1}, {m1, "retry_payment", "pending", "in_a", 2}},
			code: "23505",
		},
		{
			name: "a pending retry_payment beside a failed one",
			args: [][]any{{m1, "retry_payment", "failed", "in_b", 1}, {m1, "retry_payment", "pending", "in_b", 2}},
		},
		{
			name: "the same invoice id at another merchant",
			args: [][]any{{m1, "retry_payment", "pending", "in_c", 1}, {m2, "retry_payment", "pending", "in_c", 1}},
		},
		{
			name: "a second notify_payment_failed for an invoice attempt",
			args: [][]any{{m1, "notify_payment_failed", "succeeded", "in_d", 1}, {m1, "notify_payment_failed", "pending", "in_d", 1}},
			code: "23505",
		},
		{
			name: "notify_payment_failed for the next attempt",
			args: [][]any{{m1, "notify_payment_failed", "pending", "in_e", 1}, {m1, "notify_payment_failed", "pending", "in_e", 2}},
		},
		{
			name: "a second notify_reminder for an invoice and number",
			args: [][]any{{m1, "notify_reminder", "succeeded", "in_f", 1}, {m1, "notify_reminder", "pending", "in_f", 1}},
			code: "23505",
		},
		{
			name: "notify_reminder of the next number",
			args: [][]any{{m1, "notify_reminder", "pending", "in_g", 1}, {m1, "notify_reminder", "pending", "in_g", 2}},
		},
		{
			name: "a second end_dunning for an invoice",
			args: [][]any{{m1, "end_dunning", "succeeded", "in_h", 1}, {m1, "end_dunning", "pending", "in_h", 2}},
			code: "23505",
		},
		{
			name: "an end_dunning beside a cancelled one",
			args: [][]any{{m1, "end_dunning", "cancelled", "in_i", 1}, {m1, "end_dunning", "pending", "in_i", 1}},
		},
		{
			// These rows name no card (''): the rule keys them by it all
			// the same, as every adapter does.
			name: "a second notify_card_expiring for a card and month",
			args: [][]any{{m1, "notify_card_expiring", "succeeded", "", 202708}, {m1, "notify_card_expiring", "pending", "", 202708}},
			code: "23505",
		},
		{
			name: "notify_card_expiring of the next month",
			args: [][]any{{m1, "notify_card_expiring", "pending", "", 202709}, {m1, "notify_card_expiring", "pending", "", 202710}},
		},
		{
			name: "an unknown status",
			args: [][]any{{m1, "notify_charge_failed", "paused", "", 0}},
			code: "23514",
		},
		{
			name: "an unknown type",
			args: [][]any{{m1, "send_flowers", "pending", "", 0}},
			code: "23514",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			var err error
			for i, args := range c.args {
				_, err = db.NewRaw(insertTask, args...).Exec(ctx)
				if i < len(c.args)-1 {
					is.NoErr(err) // the rows before the last go in
				}
			}
			if c.code == "" {
				is.NoErr(err) // the rules allow it
				return
			}
			var pgErr *pgconn.PgError
			is.True(errors.As(err, &pgErr)) // the database refuses it
			is.Equal(pgErr.Code, c.code)    // with the constraint's SQLSTATE
		})
	}

	t.Run("keys, accounts and events are unique", func(t *testing.T) {
		is := is.New(t)
		stmts := []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO merchants (id, name, stripe_account_id, created_at) VALUES (?, 'A', 'acct_same', now())`, []any{m1}},
			{`INSERT INTO merchants (id, name, stripe_account_id, created_at) VALUES (?, 'B', 'acct_same', now())`, []any{m2}},
			{`INSERT INTO api_keys (prefix, merchant_id, hash, created_at) VALUES ('rk_1', ?, decode(repeat('ab', 32), 'hex'), now())`, []any{m1}},
			{`INSERT INTO api_keys (prefix, merchant_id, hash, created_at) VALUES ('rk_2', ?, decode(repeat('ab', 32), 'hex'), now())`, []any{m1}},
			{`INSERT INTO processed_events (event_id, processed_at) VALUES ('evt_1', now())`, nil},
			{`INSERT INTO processed_events (event_id, processed_at) VALUES ('evt_1', now())`, nil},
		}
		for i, s := range stmts {
			_, err := db.NewRaw(s.sql, s.args...).Exec(ctx)
			if i%2 == 0 {
				is.NoErr(err) // the first row goes in
				continue
			}
			var pgErr *pgconn.PgError
			is.True(errors.As(err, &pgErr)) // the duplicate is refused
			is.Equal(pgErr.Code, "23505")   // as a unique violation
		}
	})
}
