package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// MerchantID identifies a merchant (a UUID). It is a named type so that a
// merchant can never be passed where another string is meant.
type MerchantID string

// Merchant is a business that bills through Stripe Connect and whose failed
// payments recoup works to recover.
type Merchant struct {
	ID              MerchantID
	Name            string
	StripeAccountID string // acct_…, unique across merchants
	CreatedAt       time.Time
}

// Validate reports whether the merchant's fields are acceptable for storage.
func (m Merchant) Validate() error {
	if _, err := ParseUUID(string(m.ID)); err != nil {
		return fmt.Errorf("merchant id: %w", err)
	}
	name := strings.TrimSpace(m.Name)
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: name must be 1 to 200 characters", ErrInvalid)
	}
	if !validStripeID(m.StripeAccountID, "acct_") {
		return fmt.Errorf("%w: stripe_account_id must look like acct_…", ErrInvalid)
	}
	return nil
}

func validStripeID(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) <= len(prefix) || len(s) > 255 {
		return false
	}
	for _, r := range s[len(prefix):] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// APIKeyHash is the SHA-256 of a plain API key: the only form in which a key
// is stored.
type APIKeyHash [sha256.Size]byte

// Equal compares two hashes in constant time.
func (h APIKeyHash) Equal(o APIKeyHash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// APIKey is a stored merchant API key: its public prefix and its hash.
type APIKey struct {
	MerchantID MerchantID
	Prefix     string // rk_<key id>: names the key without revealing it
	Hash       APIKeyHash
	CreatedAt  time.Time
}

const apiKeyScheme = "rk_"

// NewAPIKey makes a random key for the merchant. It returns the plain key,
// to be shown once, and the record to store.
func NewAPIKey(merchant MerchantID, now time.Time) (plain string, key APIKey, err error) {
	var id [6]byte
	var secret [24]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("api key id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("api key secret: %w", err)
	}
	enc := base64.RawURLEncoding
	// The key id and secret use an alphabet without '_' so the key splits
	// unambiguously at its underscores.
	prefix := apiKeyScheme + strings.NewReplacer("_", "x", "-", "y").Replace(enc.EncodeToString(id[:]))
	plain = prefix + "_" + strings.NewReplacer("_", "x", "-", "y").Replace(enc.EncodeToString(secret[:]))
	return plain, APIKey{MerchantID: merchant, Prefix: prefix, Hash: HashAPIKey(plain), CreatedAt: now}, nil
}

// HashAPIKey returns the stored form of a plain key.
func HashAPIKey(plain string) APIKeyHash { return sha256.Sum256([]byte(plain)) }

// ParseAPIKey checks a presented key's shape and returns its prefix. It does
// not say whether the key exists.
func ParseAPIKey(plain string) (prefix string, err error) {
	rest, ok := strings.CutPrefix(plain, apiKeyScheme)
	if !ok || len(plain) > 128 {
		return "", fmt.Errorf("%w: malformed api key", ErrInvalid)
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" || strings.Contains(secret, "_") {
		return "", fmt.Errorf("%w: malformed api key", ErrInvalid)
	}
	return apiKeyScheme + id, nil
}
