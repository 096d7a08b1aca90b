package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// UpdateLinkLifetime is how long an update link works after its email.
const UpdateLinkLifetime = 30 * 24 * time.Hour

// UpdateLink is what a customer's update link names: the merchant, its
// customer, and the invoice the email was about (none for an expiring
// card), until Expires.
type UpdateLink struct {
	Merchant MerchantID
	Customer string
	Invoice  string
	Expires  time.Time
}

// LinkKeys sign and check update links. The first key signs; every key
// checks, so that links signed before a rotation of the keys keep working
// while the older key is still configured.
type LinkKeys [][]byte

// A token is base64url (no padding) of
//
//	version (1) | merchant uuid (16) | expires unix seconds (8) |
//	len (1) | customer | len (1) | invoice | MAC (16)
//
// where MAC is HMAC-SHA256, truncated, of everything before it.
const (
	linkVersion = 1
	linkMACLen  = 16
	maxLinkID   = 255
)

var linkEncoding = base64.RawURLEncoding.Strict()

// Sign returns the token of l. ErrInvalid if the keys are empty, the
// merchant is not a UUID or an id is too long.
func (k LinkKeys) Sign(l UpdateLink) (string, error) {
	m, err := uuid.Parse(string(l.Merchant))
	if len(k) == 0 || err != nil || len(l.Customer) > maxLinkID || len(l.Invoice) > maxLinkID {
		return "", fmt.Errorf("%w: cannot sign this update link", ErrInvalid)
	}
	b := make([]byte, 0, 1+16+8+2+len(l.Customer)+len(l.Invoice)+linkMACLen)
	b = append(b, linkVersion)
	b = append(b, m[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Expires.Unix()))
	b = append(b, byte(len(l.Customer)))
	b = append(b, l.Customer...)
	b = append(b, byte(len(l.Invoice)))
	b = append(b, l.Invoice...)
	b = append(b, linkMAC(k[0], b)...)
	return linkEncoding.EncodeToString(b), nil
}

// Parse checks a token and returns the link it names. Every token that
// is not one Sign made with one of the keys, or whose link expired at
// now, is ErrNotFound: a bad link is a page that does not exist.
func (k LinkKeys) Parse(token string, now time.Time) (UpdateLink, error) {
	bad := fmt.Errorf("update link: %w", ErrNotFound)
	b, err := linkEncoding.DecodeString(token)
	if err != nil || len(b) < 1+16+8+2+linkMACLen || b[0] != linkVersion {
		return UpdateLink{}, bad
	}
	body, mac := b[:len(b)-linkMACLen], b[len(b)-linkMACLen:]
	signed := false
	for _, key := range k {
		if hmac.Equal(mac, linkMAC(key, body)) {
			signed = true
			break
		}
	}
	if !signed {
		return UpdateLink{}, bad
	}
	m, _ := uuid.FromBytes(body[1:17])
	expires := time.Unix(int64(binary.BigEndian.Uint64(body[17:25])), 0).UTC()
	rest := body[25:]
	customer, rest, ok := lengthPrefixed(rest)
	if !ok {
		return UpdateLink{}, bad
	}
	invoice, rest, ok := lengthPrefixed(rest)
	if !ok || len(rest) != 0 || customer == "" || !now.Before(expires) {
		return UpdateLink{}, bad
	}
	return UpdateLink{Merchant: MerchantID(m.String()), Customer: customer, Invoice: invoice, Expires: expires}, nil
}

func lengthPrefixed(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

func linkMAC(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return h.Sum(nil)[:linkMACLen]
}

// LinkKeysFromSecrets derives update-link keys from the webhook signing
// secrets, which every process of a deployment shares: one key per secret,
// in the secrets' order, so that the first signs and a secret kept during
// a rotation keeps its links valid.
func LinkKeysFromSecrets(secrets []string) LinkKeys {
	var keys LinkKeys
	for _, s := range secrets {
		if s == "" {
			continue
		}
		h := hmac.New(sha256.New, []byte(s))
		h.Write([]byte("recoup update-link key v1"))
		keys = append(keys, h.Sum(nil))
	}
	return keys
}
