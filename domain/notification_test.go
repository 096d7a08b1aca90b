package domain_test

import (
	"testing"

	"github.com/recoupdev/recoup/domain"
)

func TestMaskEmail(t *testing.T) {
	for in, want := range map[string]string{
		"jenny@example.com": "j***@example.com",
		"J@example.com":     "J***@example.com",
		"élodie@example.fr": "é***@example.fr",
		"":                  "",
		"not an address":    "***",
		"@example.com":      "***",
		"jenny@":            "***",
	} {
		if got := domain.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}
