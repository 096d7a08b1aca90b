package domain_test

import (
	"fmt"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestFormatAmount(t *testing.T) {
	cases := []struct {
		minor    int64
		currency string
		want     string
	}{
		{2000, "usd", "$20.00"},
		{2000, "USD", "$20.00"},
		{5, "usd", "$0.05"},
		{0, "eur", "€0.00"},
		{123456, "cad", "1,234.56 CAD"},
		{123456789, "gbp", "£1,234,567.89"},
		{500, "jpy", "¥500"},
		{1500000, "krw", "1,500,000 KRW"},
		{12345, "kwd", "12.345 KWD"},
		{-2050, "usd", "-$20.50"},
		{100, "", "1.00"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d %s", c.minor, c.currency), func(t *testing.T) {
			is := is.New(t)
			is.Equal(domain.FormatAmount(c.minor, c.currency), c.want) // formatted amount
		})
	}
}
