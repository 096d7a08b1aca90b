package domain

import (
	"cmp"
	"iter"
	"slices"
	"strings"
	"time"
)

// DateLayout is how a day of the recovery figures is written: a UTC
// calendar day, YYYY-MM-DD.
const DateLayout = "2006-01-02"

// UnknownDeclineCode is the key under which RecoveryFigures.ByDeclineCode
// counts the invoices whose decline code recoup never learned.
const UnknownDeclineCode = "unknown"

// RecoveryFigures are one merchant's recovery figures over a span of time.
// An invoice counts as failed at its FirstFailedAt, with its AmountDue, and
// as recovered at its ClosedAt, with its PaidAmount, when it was paid after
// a failure (InvoiceRecord.Recovered); each side counts when its time falls
// in the span. One invoice may thus count as failed in one span and as
// recovered in a later one.
type RecoveryFigures struct {
	// Series has one row per UTC day and currency on which an invoice
	// failed or was recovered, by day, then currency.
	Series []DayFigures
	// ByDeclineCode counts the failed and the recovered invoices by the
	// record's decline code (its latest known), UnknownDeclineCode when it
	// has none. Only codes with an invoice counted have an entry.
	ByDeclineCode map[string]DeclineFigures
	// BySource counts the recovered invoices by what recovered them. Every
	// source of RecoverySources has an entry, zeros included.
	BySource map[RecoverySource]int
}

// DayFigures sums, for one UTC day and currency, the amount due of the
// invoices that first failed that day and the amount paid of those
// recovered that day, in minor units.
type DayFigures struct {
	Date            string // the UTC day, as DateLayout writes it
	Currency        string
	FailedAmount    int64
	RecoveredAmount int64
}

// DeclineFigures counts the invoices of one decline code that failed and
// that were recovered.
type DeclineFigures struct {
	FailedInvoices    int
	RecoveredInvoices int
}

// NewRecoveryFigures returns figures with nothing counted: no rows, no
// codes, and every source at zero.
func NewRecoveryFigures() RecoveryFigures {
	f := RecoveryFigures{ByDeclineCode: map[string]DeclineFigures{}, BySource: make(map[RecoverySource]int, len(RecoverySources))}
	for _, s := range RecoverySources {
		f.BySource[s] = 0
	}
	return f
}

// FiguresOf computes the recovery figures of records from from (included)
// to to (excluded); when to is not after from, nothing counts.
func FiguresOf(records iter.Seq[InvoiceRecord], from, to time.Time) RecoveryFigures {
	f := NewRecoveryFigures()
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	type key struct{ date, currency string }
	rows := map[key]int{} // index in f.Series
	row := func(at time.Time, currency string) *DayFigures {
		k := key{at.UTC().Format(DateLayout), currency}
		i, ok := rows[k]
		if !ok {
			i = len(f.Series)
			rows[k] = i
			f.Series = append(f.Series, DayFigures{Date: k.date, Currency: currency})
		}
		return &f.Series[i]
	}
	for r := range records {
		failed := r.Failed() && in(r.FirstFailedAt)
		recovered := r.Recovered() && in(r.ClosedAt)
		if !failed && !recovered {
			continue
		}
		code := cmp.Or(r.DeclineCode, UnknownDeclineCode)
		d := f.ByDeclineCode[code]
		if failed {
			row(r.FirstFailedAt, r.Currency).FailedAmount += r.AmountDue
			d.FailedInvoices++
		}
		if recovered {
			row(r.ClosedAt, r.Currency).RecoveredAmount += r.PaidAmount
			d.RecoveredInvoices++
			f.BySource[r.RecoveredBy]++
		}
		f.ByDeclineCode[code] = d
	}
	slices.SortFunc(f.Series, func(a, b DayFigures) int {
		return cmp.Or(strings.Compare(a.Date, b.Date), strings.Compare(a.Currency, b.Currency))
	})
	return f
}

// The span of the figures a merchant asks for (DayRange).
const (
	// DefaultStatsDays is how many days the figures cover when no span
	// is asked for: the last 30, today included.
	DefaultStatsDays = 30
	// MaxStatsDays is the most days the figures may cover.
	MaxStatsDays = 366
)

// DayRange is a span of whole UTC days, From through To, both included;
// each is the midnight (UTC) that begins its day.
type DayRange struct{ From, To time.Time }

// Day returns the UTC day of t, as the midnight that begins it.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Days is how many days r covers; 0 or less when To is before From.
func (r DayRange) Days() int { return int(r.To.Sub(r.From)/(24*time.Hour)) + 1 }

// End is the midnight after r's last day: r covers the times from From
// (included) to End (excluded).
func (r DayRange) End() time.Time { return r.To.AddDate(0, 0, 1) }
