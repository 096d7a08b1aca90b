package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/recoupdev/recoup/domain"
)

// cursorCodec makes the task list's cursors opaque and tamper-evident.
//
// A cursor is base64url (no padding) of
//
//	version (1 byte) | created_at unix nanos (8) | task id (16) | MAC (16)
//
// where MAC is HMAC-SHA256, truncated, over the first 25 bytes and the
// merchant's id. A cursor names only a position in the caller's own list
// (the storage query is scoped to the merchant whatever the cursor says), so
// the MAC guards clarity rather than tenancy: any forged, truncated or
// edited cursor, or one issued to another merchant, is a plain 400 instead
// of a silently different page.
//
// The key must be the same in every process that serves one client: with
// an empty key each process draws a random one, and its cursors stop
// working at a restart or on another instance behind a load balancer.
type cursorCodec struct {
	key []byte
}

const (
	cursorVersion = 1
	cursorBody    = 1 + 8 + 16
	cursorMACLen  = 16
	cursorLen     = cursorBody + cursorMACLen
)

var cursorEncoding = base64.RawURLEncoding.Strict()

func newCursorCodec(key []byte) cursorCodec {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails: crypto/rand crashes the program instead
	}
	return cursorCodec{key: append([]byte(nil), key...)}
}

func (c cursorCodec) mac(body []byte, merchant domain.MerchantID) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write(body)
	h.Write([]byte(merchant))
	return h.Sum(nil)[:cursorMACLen]
}

// encode returns the cursor of position p for merchant.
func (c cursorCodec) encode(p domain.TaskCursor, merchant domain.MerchantID) (string, error) {
	id, err := uuid.Parse(string(p.ID))
	if err != nil {
		return "", fmt.Errorf("cursor of task %q: %w", p.ID, err)
	}
	buf := make([]byte, cursorBody, cursorLen)
	buf[0] = cursorVersion
	binary.BigEndian.PutUint64(buf[1:9], uint64(p.CreatedAt.UnixNano()))
	copy(buf[9:25], id[:])
	buf = append(buf, c.mac(buf, merchant)...)
	return cursorEncoding.EncodeToString(buf), nil
}

// decode checks a cursor given by merchant and returns its position;
// ErrInvalid (with a message for the client) for anything not issued by
// encode to that merchant.
func (c cursorCodec) decode(s string, merchant domain.MerchantID) (domain.TaskCursor, error) {
	bad := invalid("invalid cursor")
	if len(s) != cursorEncoding.EncodedLen(cursorLen) {
		return domain.TaskCursor{}, bad
	}
	buf, err := cursorEncoding.DecodeString(s)
	if err != nil || len(buf) != cursorLen {
		return domain.TaskCursor{}, bad
	}
	if !hmac.Equal(buf[cursorBody:], c.mac(buf[:cursorBody], merchant)) || buf[0] != cursorVersion {
		return domain.TaskCursor{}, bad
	}
	id, err := uuid.FromBytes(buf[9:25])
	if err != nil {
		return domain.TaskCursor{}, bad
	}
	nanos := int64(binary.BigEndian.Uint64(buf[1:9]))
	return domain.TaskCursor{CreatedAt: time.Unix(0, nanos).UTC(), ID: domain.TaskID(id.String())}, nil
}

// CursorKeyFromSecrets derives a cursor key from the webhook signing
// secrets, which every process serving the same clients shares anyway: the
// recoup binary and an embedding service derive the same key, so cursors
// work on any instance and survive restarts with no setting of their own. A
// rotation of the secrets ends the cursors in use: a client starts its walk
// again.
func CursorKeyFromSecrets(secrets []string) []byte {
	sorted := slices.Sorted(slices.Values(secrets))
	mac := hmac.New(sha256.New, []byte(strings.Join(sorted, ",")))
	mac.Write([]byte("recoup task-list cursor key v1"))
	return mac.Sum(nil)
}
