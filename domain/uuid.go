package domain

import (
	"fmt"

	"github.com/google/uuid"
)

// NewID returns a random (version 4) UUID in its canonical form.
func NewID() string { return uuid.NewString() }

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
