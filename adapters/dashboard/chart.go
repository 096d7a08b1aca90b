package dashboard

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/recoupdev/recoup/domain"
)

// chart is the series drawn as an SVG bar chart: per day, the amount that
// failed beside the amount recovered, in one currency (the one with the
// most failed and recovered in the span; the series table lists every
// currency). All
// coordinates are computed here, so that the template only places them.
type chart struct {
	Width, Height int
	Currency      string // upper case; empty when nothing failed or was recovered
	Others        []string
	Title         string
	// The plot area.
	Left, Right, Top, Bottom float64
	Bars                     []bar
	YTicks                   []tick
	XTicks                   []tick
}

// MidX and MidY are the middle of the plot area, where an empty chart
// says so.
func (c chart) MidX() float64 { return (c.Left + c.Right) / 2 }

// MidY: see MidX.
func (c chart) MidY() float64 { return (c.Top + c.Bottom) / 2 }

type bar struct {
	X, Y, W, H float64
	Class      string
	Label      string
}

type tick struct {
	Pos   float64
	Label string
}

const (
	chartWidth  = 760
	chartHeight = 280
	yTicks      = 4
	maxXLabels  = 8
)

func newChart(days domain.DayRange, series []domain.DayFigures) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Left: 88, Right: chartWidth - 12, Top: 16, Bottom: chartHeight - 32}
	totals := map[string]int64{}
	for _, d := range series {
		totals[d.Currency] += d.FailedAmount + d.RecoveredAmount
	}
	currencies := slices.SortedFunc(maps.Keys(totals), func(a, b string) int {
		return cmp.Or(cmp.Compare(totals[b], totals[a]), strings.Compare(a, b))
	})
	n := days.Days()
	slot := (c.Right - c.Left) / float64(n)
	for i := range n {
		if step := (n + maxXLabels - 1) / maxXLabels; i%step == 0 {
			c.XTicks = append(c.XTicks, tick{Pos: c.Left + slot*(float64(i)+0.5), Label: days.From.AddDate(0, 0, i).Format("Jan 2")})
		}
	}
	if len(currencies) == 0 {
		c.Title = fmt.Sprintf("Failed and recovered amounts per day, %s to %s: none", days.From.Format(domain.DateLayout), days.To.Format(domain.DateLayout))
		c.YTicks = []tick{{Pos: c.Bottom, Label: "0"}}
		return c
	}
	cur := currencies[0]
	c.Currency = strings.ToUpper(cur)
	for _, o := range currencies[1:] {
		c.Others = append(c.Others, strings.ToUpper(o))
	}
	c.Title = fmt.Sprintf("Failed and recovered amounts per day in %s, %s to %s", c.Currency,
		days.From.Format(domain.DateLayout), days.To.Format(domain.DateLayout))

	byDay := map[string]domain.DayFigures{}
	var peak int64
	for _, d := range series {
		if d.Currency == cur {
			byDay[d.Date] = d
			peak = max(peak, d.FailedAmount, d.RecoveredAmount)
		}
	}
	top := niceCeiling(peak)
	y := func(v int64) float64 { return c.Bottom - (c.Bottom-c.Top)*float64(v)/float64(top) }
	for i := range yTicks + 1 {
		v := top * int64(i) / yTicks
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: domain.FormatAmount(v, cur)})
	}
	w := max(slot*0.38, 0.5)
	for i := range n {
		day := days.From.AddDate(0, 0, i).Format(domain.DateLayout)
		d, ok := byDay[day]
		if !ok {
			continue
		}
		x := c.Left + slot*float64(i) + slot*0.1
		for _, b := range []struct {
			v     int64
			class string
			what  string
		}{{d.FailedAmount, "bar-failed", "failed"}, {d.RecoveredAmount, "bar-recovered", "recovered"}} {
			if b.v > 0 {
				c.Bars = append(c.Bars, bar{X: x, Y: y(b.v), W: w, H: c.Bottom - y(b.v), Class: b.class,
					Label: fmt.Sprintf("%s: %s %s", day, domain.FormatAmount(b.v, cur), b.what)})
			}
			x += w
		}
	}
	return c
}

// niceCeiling is the smallest of 1, 2 or 5 times a power of ten, times
// yTicks, at or above v (so that every tick is a round amount); 100 (one
// unit of most currencies) when v is 0.
func niceCeiling(v int64) int64 {
	if v <= 0 {
		return 100 * yTicks
	}
	step := float64(v) / yTicks
	mag := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= step {
			return int64(m*mag) * yTicks
		}
	}
	return int64(10*mag) * yTicks
}
