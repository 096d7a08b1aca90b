package domain

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// NewID returns a random (version 4) UUID in its canonical form: 122
// random bits from crypto/rand, lowercase, in one allocation (every
// webhook makes two).
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	hex.Encode(b[9:13], u[4:6])
	hex.Encode(b[14:18], u[6:8])
	hex.Encode(b[19:23], u[8:10])
	hex.Encode(b[24:36], u[10:16])
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return string(b[:])
}

// ParseUUID accepts only the canonical 36-character form of a UUID, so that
// one id has exactly one spelling.
func ParseUUID(s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("%w: not a UUID", ErrInvalid)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: not a UUID", ErrInvalid)
	}
	return u.String(), nil
}
