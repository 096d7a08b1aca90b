package domain

import (
	"strconv"
	"strings"
)

// Currencies whose minor unit is not a hundredth, as Stripe counts them.
const (
	zeroDecimal  = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"
	threeDecimal = "bhd jod kwd omr tnd"
)

// symbol is the sign written before amounts of the currencies whose sign
// is unambiguous; others are written with their code after the number.
func symbol(currency string) (string, bool) {
	switch currency {
	case "usd":
		return "$", true
	case "eur":
		return "€", true
	case "gbp":
		return "£", true
	case "jpy":
		return "¥", true
	}
	return "", false
}

// FormatAmount writes an amount in minor units in its currency's major
// units: 2000 usd is "$20.00", 123456 cad "1,234.56 CAD", 500 jpy "¥500".
func FormatAmount(minor int64, currency string) string {
	cur := strings.ToLower(strings.TrimSpace(currency))
	decimals := 2
	switch {
	case cur != "" && strings.Contains(" "+zeroDecimal+" ", " "+cur+" "):
		decimals = 0
	case cur != "" && strings.Contains(" "+threeDecimal+" ", " "+cur+" "):
		decimals = 3
	}
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-(minor+1))+1
	}
	var unit uint64 = 1
	for range decimals {
		unit *= 10
	}
	num := groupThousands(strconv.FormatUint(u/unit, 10))
	if decimals > 0 {
		frac := strconv.FormatUint(u%unit, 10)
		num += "." + strings.Repeat("0", decimals-len(frac)) + frac
	}
	if sym, ok := symbol(cur); ok {
		return sign + sym + num
	}
	if cur == "" {
		return sign + num
	}
	return sign + num + " " + strings.ToUpper(cur)
}

func groupThousands(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	lead := len(digits) % 3
	if lead > 0 {
		b.WriteString(digits[:lead])
	}
	for i := lead; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}
