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

type merchantRow struct {
	bun.BaseModel `bun:"table:merchants,alias:merchants"`

	ID              string    `bun:"id,pk"`
	Name            string    `bun:"name"`
	StripeAccountID string    `bun:"stripe_account_id"`
	CreatedAt       time.Time `bun:"created_at"`
}

func (r merchantRow) merchant() domain.Merchant {
	return domain.Merchant{
		ID: domain.MerchantID(r.ID), Name: r.Name, StripeAccountID: r.StripeAccountID, CreatedAt: r.CreatedAt.UTC(),
	}
}

type apiKeyRow struct {
	bun.BaseModel `bun:"table:api_keys,alias:api_keys"`

	Prefix     string     `bun:"prefix,pk"`
	MerchantID string     `bun:"merchant_id"`
	Hash       []byte     `bun:"hash"`
	CreatedAt  time.Time  `bun:"created_at"`
	RevokedAt  *time.Time `bun:"revoked_at"`
}

// merchantDir is the merchant directory: merchants and their API keys.
type merchantDir struct {
	db bun.IDB
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
	row := merchantRow{ID: mid, Name: m.Name, StripeAccountID: m.StripeAccountID, CreatedAt: m.CreatedAt}
	keyRow := apiKeyRow{Prefix: key.Prefix, MerchantID: mid, Hash: key.Hash[:], CreatedAt: key.CreatedAt}
	err = d.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewInsert().Model(&keyRow).Exec(ctx)
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
	return d.one(ctx, "merchant "+string(id), "id = ?", mid)
}

// MerchantByStripeAccount reads the merchant bound to a connected account.
func (d merchantDir) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	return d.one(ctx, "merchant for account "+account, "stripe_account_id = ?", account)
}

func (d merchantDir) one(ctx context.Context, what, where string, arg any) (domain.Merchant, error) {
	var row merchantRow
	err := d.db.NewSelect().Model(&row).Where(where, arg).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Merchant{}, fmt.Errorf("%s: %w", what, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Merchant{}, interpretError(what, err)
	}
	return row.merchant(), nil
}

// MerchantByAPIKey finds the unrevoked key by its prefix and compares the
// hash in Go, in constant time, so that the comparison's timing reveals
// nothing about the stored hash.
func (d merchantDir) MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error) {
	var row struct {
		merchantRow
		Hash []byte `bun:"hash"`
	}
	err := d.db.NewRaw(`
		SELECT merchants.id, merchants.name, merchants.stripe_account_id, merchants.created_at, api_keys.hash
		FROM api_keys JOIN merchants ON merchants.id = api_keys.merchant_id
		WHERE api_keys.prefix = ? AND api_keys.revoked_at IS NULL`, prefix).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Merchant{}, interpretError("api key "+prefix, err)
	}
	var stored domain.APIKeyHash
	if len(row.Hash) != len(stored) || !domain.APIKeyHash(row.Hash).Equal(hash) {
		return domain.Merchant{}, fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	return row.merchant(), nil
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
	res, err := d.db.NewRaw(`
		INSERT INTO api_keys (prefix, merchant_id, hash, created_at)
		SELECT ?, id, ?, ? FROM merchants WHERE id = ?`,
		key.Prefix, key.Hash[:], key.CreatedAt, mid).Exec(ctx)
	if err != nil {
		return interpretError("add api key", err)
	}
	n, err := res.RowsAffected()
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
	res, err := d.db.NewRaw(`
		UPDATE api_keys SET revoked_at = ?
		WHERE merchant_id = ? AND prefix = ? AND revoked_at IS NULL`, at, mid, prefix).Exec(ctx)
	if err != nil {
		return interpretError("revoke api key", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return interpretError("revoke api key", err)
	}
	if n == 0 {
		return fmt.Errorf("api key %s: %w", prefix, domain.ErrNotFound)
	}
	return nil
}
