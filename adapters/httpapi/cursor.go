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

// cursorCodec makes the list cursors opaque and tamper-evident.
//
// A cursor is base64url (no padding) of
//
//	version (1 byte) | created_at unix nanos (8) | id (16) | MAC (16)
//
// where MAC is HMAC-SHA256, truncated, over the first 25 bytes and what
// the cursor is bound to: the merchant's id for the task list (version 1);
// the merchant's and the endpoint's ids for an endpoint's deliveries
// (version 2, the id being the UUID of the delivery's msg_ id). A cursor
// names only a position in the caller's own list (the storage query is
// scoped to the merchant whatever the cursor says), so the MAC guards
// clarity rather than tenancy: any forged, truncated or edited cursor, one
// issued to another merchant, for another endpoint or for the other list,
// is a plain 400 instead of a silently different page.
//
// The key must be the same in every process that serves one client: with
// an empty key each process draws a random one, and its cursors stop
// working at a restart or on another instance behind a load balancer.
type cursorCodec struct {
	key []byte
}

const (
	taskCursorVersion     = 1
	deliveryCursorVersion = 2
	cursorBody            = 1 + 8 + 16
	cursorMACLen          = 16
	cursorLen             = cursorBody + cursorMACLen
)

var cursorEncoding = base64.RawURLEncoding.Strict()

func newCursorCodec(key []byte) cursorCodec {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails: crypto/rand crashes the program instead
	}
	return cursorCodec{key: append([]byte(nil), key...)}
}

// mac authenticates body and what the cursor is bound to, separated by a
// NUL (which no id holds); one binding gives the MAC of version 1's
// cursors as they have always been.
func (c cursorCodec) mac(body []byte, binding ...string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write(body)
	for i, b := range binding {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(b))
	}
	return h.Sum(nil)[:cursorMACLen]
}

// seal returns the cursor of the position (at, id) in the list of this
// version, bound to binding.
func (c cursorCodec) seal(version byte, at time.Time, id uuid.UUID, binding ...string) string {
	buf := make([]byte, cursorBody, cursorLen)
	buf[0] = version
	binary.BigEndian.PutUint64(buf[1:9], uint64(at.UnixNano()))
	copy(buf[9:25], id[:])
	buf = append(buf, c.mac(buf, binding...)...)
	return cursorEncoding.EncodeToString(buf)
}

// open checks a cursor of this version bound to binding and returns its
// position; ErrInvalid (with a message for the client) for anything not
// sealed so.
func (c cursorCodec) open(s string, version byte, binding ...string) (time.Time, uuid.UUID, error) {
	bad := invalid("invalid cursor")
	if len(s) != cursorEncoding.EncodedLen(cursorLen) {
		return time.Time{}, uuid.UUID{}, bad
	}
	buf, err := cursorEncoding.DecodeString(s)
	if err != nil || len(buf) != cursorLen {
		return time.Time{}, uuid.UUID{}, bad
	}
	if !hmac.Equal(buf[cursorBody:], c.mac(buf[:cursorBody], binding...)) || buf[0] != version {
		return time.Time{}, uuid.UUID{}, bad
	}
	id, err := uuid.FromBytes(buf[9:25])
	if err != nil {
		return time.Time{}, uuid.UUID{}, bad
	}
	nanos := int64(binary.BigEndian.Uint64(buf[1:9]))
	return time.Unix(0, nanos).UTC(), id, nil
}

// encode returns the task list cursor of position p for merchant.
func (c cursorCodec) encode(p domain.TaskCursor, merchant domain.MerchantID) (string, error) {
	id, err := uuid.Parse(string(p.ID))
	if err != nil {
		return "", fmt.Errorf("cursor of task %q: %w", p.ID, err)
	}
	return c.seal(taskCursorVersion, p.CreatedAt, id, string(merchant)), nil
}

// decode checks a task list cursor given by merchant and returns its
// position; ErrInvalid for anything not issued by encode to that merchant.
func (c cursorCodec) decode(s string, merchant domain.MerchantID) (domain.TaskCursor, error) {
	at, id, err := c.open(s, taskCursorVersion, string(merchant))
	if err != nil {
		return domain.TaskCursor{}, err
	}
	return domain.TaskCursor{CreatedAt: at, ID: domain.TaskID(id.String())}, nil
}

// deliveryIDPrefix starts every delivery id; the cursor holds the UUID
// after it.
const deliveryIDPrefix = "msg_"

// encodeDelivery returns the cursor of position p in the endpoint's
// deliveries, for merchant.
func (c cursorCodec) encodeDelivery(p domain.DeliveryCursor, merchant domain.MerchantID, endpoint domain.EndpointID) (string, error) {
	raw, ok := strings.CutPrefix(string(p.ID), deliveryIDPrefix)
	id, err := uuid.Parse(raw)
	if !ok || err != nil {
		return "", fmt.Errorf("cursor of delivery %q: not msg_ and a UUID", p.ID)
	}
	return c.seal(deliveryCursorVersion, p.CreatedAt, id, string(merchant), string(endpoint)), nil
}

// decodeDelivery checks a deliveries cursor given by merchant for the
// endpoint and returns its position; ErrInvalid for anything not issued by
// encodeDelivery to that merchant for that endpoint.
func (c cursorCodec) decodeDelivery(s string, merchant domain.MerchantID, endpoint domain.EndpointID) (domain.DeliveryCursor, error) {
	at, id, err := c.open(s, deliveryCursorVersion, string(merchant), string(endpoint))
	if err != nil {
		return domain.DeliveryCursor{}, err
	}
	return domain.DeliveryCursor{CreatedAt: at, ID: domain.DeliveryID(deliveryIDPrefix + id.String())}, nil
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

// Cursors issues and checks the task list's and the deliveries' cursors,
// for another adapter that pages the same lists (the dashboard): with the
// same key, its cursors mean what the API's do, and either takes the
// other's.
type Cursors struct{ c cursorCodec }

// NewCursors returns the cursors of key; see TaskAPIOptions.CursorKey.
func NewCursors(key []byte) Cursors { return Cursors{newCursorCodec(key)} }

// EncodeTask returns the task list cursor of position p for merchant.
func (c Cursors) EncodeTask(p domain.TaskCursor, merchant domain.MerchantID) (string, error) {
	return c.c.encode(p, merchant)
}

// DecodeTask checks a task list cursor given by merchant; ErrInvalid for
// anything not issued to it.
func (c Cursors) DecodeTask(s string, merchant domain.MerchantID) (domain.TaskCursor, error) {
	return c.c.decode(s, merchant)
}

// EncodeDelivery returns the cursor of position p in the endpoint's
// deliveries, for merchant.
func (c Cursors) EncodeDelivery(p domain.DeliveryCursor, merchant domain.MerchantID, endpoint domain.EndpointID) (string, error) {
	return c.c.encodeDelivery(p, merchant, endpoint)
}

// DecodeDelivery checks a deliveries cursor given by merchant for the
// endpoint; ErrInvalid for anything not issued so.
func (c Cursors) DecodeDelivery(s string, merchant domain.MerchantID, endpoint domain.EndpointID) (domain.DeliveryCursor, error) {
	return c.c.decodeDelivery(s, merchant, endpoint)
}
