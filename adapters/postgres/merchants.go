package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/domain"
)

// merchantColumns is what every merchant query returns, in the order
// scanMerchant reads.
const merchantColumns = `merchants.id, merchants.name, merchants.stripe_account_id, merchants.created_at`

// scanMerchant reads merchantColumns, then any further destinations.
func scanMerchant(row interface{ Scan(...any) error }, more ...any) (domain.Merchant, error) {
	var id, name, account string
	var created time.Time
	if err := row.Scan(append([]any{&id, &name, &account, &created}, more...)...); err != nil {
		return domain.Merchant{}, err
	}
	return domain.Merchant{
		ID: domain.MerchantID(id), Name: name, StripeAccountID: account, CreatedAt: created.UTC(),
	}, nil
}

// merchantDir is the merchant directory: merchants and their API keys.
type merchantDir struct {
	bun bun.IDB // for CreateMerchant's transaction
	db  querier
}

// CreateMerchant inserts the merchant and its first key in one
// transaction. The unique constraint on stripe_account_id, not a prior
// lookup, turns away a second merchant for the same account.
func (d merchantDir) CreateMerchant(ctx context.Context, m domain.Merchant, key domain.APIKey) error {
	mid, err := domain.ParseUUID(string(m.ID))
	if err != nil {
		return fmt.Errorf("create merchant: %w", err)
	}
	if key.MerchantID != m.ID {
		return fmt.Errorf("create merchant: %w: api key belongs to merchant %q", domain.ErrInvalid, key.MerchantID)
	}
	if key.Prefix == "" {
		return fmt.Errorf("create merchant: %w: api key without prefix", domain.ErrInvalid)
	}
	if !domain.StorableText(m.Name, m.StripeAccountID, key.Prefix) {
		return fmt.Errorf("create merchant: %w: text with a NUL character", domain.ErrInvalid)
	}
	err = d.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.Tx.ExecContext(ctx, `
			INSERT INTO merchants (id, name, stripe_account_id, created_at) VALUES ($1, $2, $3, $4)`,
			mid, m.Name, m.StripeAccountID, m.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Tx.ExecContext(ctx, `
			INSERT INTO api_keys (prefix, merchant_id, hash, created_at) VALUES ($1, $2, $3, $4)`,
			key.Prefix, mid, key.Hash[:], key.CreatedAt)
		return err
	})
	return interpretError("create merchant", err)
}

// MerchantByID reads a merchant.
func (d merchantDir) MerchantByID(ctx context.Context, id domain.MerchantID) (domain.Merchant, error) {
	mid, err := domain.ParseUUID(string(id))
	if err != nil {
		return domain.Merchant{}, fmt.Errorf("merchant %s: %w", id, domain.ErrNotFound)
	}
	return d.one(ctx, "merchant "+string(id), merchantByIDSQL, mid)
}

// MerchantByStripeAccount reads the merchant bound to a connected account.
func (d merchantDir) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	return d.one(ctx, "merchant for account "+account, merchantByAccountSQL, account)
}

// Statements of the merchant reads.
const (
	merchantByIDSQL      = `SELECT ` + merchantColumns + ` FROM merchants WHERE id = $1`
	merchantByAccountSQL = `SELECT ` + merchantColumns + ` FROM merchants WHERE stripe_account_id = $1`
	merchantByKeySQL     = `
		SELECT ` + merchantColumns + `, api_keys.hash
		FROM api_keys JOIN merchants ON merchants.id = api_keys.merchant_id
		WHERE api_keys.prefix = $1 AND api_keys.revoked_at IS NULL`
)

func (d merchantDir) one(ctx context.Context, what, query string, arg any) (domain.Merchant, error) {
	m, err := scanMerchant(d.db.QueryRowContext(ctx, query, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Merchant{}, fmt.Errorf("%s: %w", what, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Merchant{}, interpretError(what, err)
	}
	return m, nil
}

// MerchantByAPIKey finds the unrevoked key by its prefix and compares the
// hash in Go, in constant time, so that the comparison's timing reveals
// nothing about the stored hash.
func (d merchantDir) MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error) {
	var storedHash []byte
	m, err := scanMerchant(d.db.QueryRowContext(ctx, merchantByKeySQL, prefix), &storedHash)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Merchant{}, interpretError("api key "+prefix, err)
	}
	var stored domain.APIKeyHash
	if len(storedHash) != len(stored) || !domain.APIKeyHash(storedHash).Equal(hash) {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	return m, nil
}

// AddAPIKey inserts the key if its merchant exists, in one statement.
func (d merchantDir) AddAPIKey(ctx context.Context, key domain.APIKey) error {
	mid, err := domain.ParseUUID(string(key.MerchantID))
	if err != nil {
		return fmt.Errorf("merchant %s: %w", key.MerchantID, domain.ErrNotFound)
	}
	if key.Prefix == "" {
		return fmt.Errorf("add api key: %w: empty prefix", domain.ErrInvalid)
	}
	n, err := rowsAffected(ctx, d.db, `
		INSERT INTO api_keys (prefix, merchant_id, hash, created_at)
		SELECT $1::text, id, $2::bytea, $3::timestamptz FROM merchants WHERE id = $4`,
		key.Prefix, key.Hash[:], key.CreatedAt, mid)
	if err != nil {
		return interpretError("add api key", err)
	}
	if n == 0 {
		return fmt.Errorf("merchant %s: %w", key.MerchantID, domain.ErrNotFound)
	}
	return nil
}

// RevokeAPIKey revokes the merchant's unrevoked key with this prefix.
func (d merchantDir) RevokeAPIKey(ctx context.Context, merchant domain.MerchantID, prefix string, at time.Time) error {
	mid, err := domain.ParseUUID(string(merchant))
	if err != nil {
		return fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	n, err := rowsAffected(ctx, d.db, `
		UPDATE api_keys SET revoked_at = $3
		WHERE merchant_id = $1 AND prefix = $2 AND revoked_at IS NULL`, mid, prefix, at)
	if err != nil {
		return interpretError("revoke api key", err)
	}
	if n == 0 {
		return fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	return nil
}

// Statements of ListMerchants, from the start and after an id: two
// texts, so that each plan is the primary key's range scan.
const (
	listMerchantsSQL      = `SELECT ` + merchantColumns + ` FROM merchants ORDER BY id LIMIT $1`
	listMerchantsAfterSQL = `SELECT ` + merchantColumns + ` FROM merchants WHERE id > $2 ORDER BY id LIMIT $1`
)

// ListMerchants reads one page of merchants by keyset on the primary key.
func (d merchantDir) ListMerchants(ctx context.Context, after domain.MerchantID, limit int) ([]domain.Merchant, error) {
	query, args := listMerchantsSQL, []any{max(limit, 0)}
	if after != "" {
		id, err := domain.ParseUUID(string(after))
		if err != nil {
			return nil, fmt.Errorf("list merchants after %s: %w", after, err)
		}
		query, args = listMerchantsAfterSQL, append(args, id)
	}
	ms, err := queryAll(ctx, d.db, func(rows *sql.Rows) (domain.Merchant, error) { return scanMerchant(rows) }, query, args...)
	if err != nil {
		return nil, interpretError("list merchants", err)
	}
	if ms == nil {
		ms = []domain.Merchant{}
	}
	return ms, nil
}
