package dashboard

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

type overviewData struct {
	From, To string
	// Rate is the all-time recovery rate: the one currency's, or each
	// currency's.
	Rate       string
	Currencies []currencyRow
	Chart      chart
	Series     []domain.DayFigures
	Declines   []declineRow
	Sources    []sourceRow
	Statuses   []statusRow
}

type currencyRow struct {
	Code                      string
	Failed, Recovered, AtRisk string
	Rate                      string
}

type declineRow struct {
	Code              string
	Failed, Recovered int
}

type sourceRow struct {
	Source domain.RecoverySource
	Count  int
}

type statusRow struct {
	Status domain.TaskStatus
	Count  int
}

func (d *dashboard) handleOverview(w http.ResponseWriter, r *http.Request, v visitor) {
	from, to, err := statsDays(r)
	var st domain.RecoveryStats
	if err == nil {
		st, err = d.cfg.Tasks.Stats(r.Context(), v.merchant, from, to)
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: newOverview(st)}, v)
}

// statsDays reads the optional from and to, UTC days written YYYY-MM-DD,
// as GET /api/stats does; the use case fills in and checks the span.
func statsDays(r *http.Request) (from, to *time.Time, err error) {
	q := r.URL.Query()
	day := func(name string) (*time.Time, error) {
		v, ok := q[name]
		switch {
		case !ok || (len(v) == 1 && v[0] == ""):
			return nil, nil // the filter form sends an empty field
		case len(v) > 1:
			return nil, fmt.Errorf("%w: query parameter %q given more than once", domain.ErrInvalid, name)
		}
		d, err := time.Parse(domain.DateLayout, v[0])
		if err != nil {
			return nil, withMessage(domain.ErrInvalid, fmt.Sprintf("invalid %s %.20q: must be a date written YYYY-MM-DD", name, v[0]))
		}
		return &d, nil
	}
	if from, err = day("from"); err != nil {
		return nil, nil, err
	}
	to, err = day("to")
	return from, to, err
}

// percent writes a rate (0 to 1) as the API's recovery_rate reads in
// percent, to one decimal.
func percent(rate float64) string { return fmt.Sprintf("%.1f%%", rate*100) }

func newOverview(st domain.RecoveryStats) overviewData {
	f := st.Figures
	out := overviewData{
		From: st.Range.From.Format(domain.DateLayout), To: st.Range.To.Format(domain.DateLayout),
		Series: f.Series,
	}
	var rates []string
	for _, code := range slices.Sorted(maps.Keys(st.ByCurrency)) {
		c := st.ByCurrency[code]
		out.Currencies = append(out.Currencies, currencyRow{
			Code: strings.ToUpper(code), Failed: domain.FormatAmount(c.FailedAmount, code),
			Recovered: domain.FormatAmount(c.RecoveredAmount, code),
			AtRisk:    domain.FormatAmount(max(c.FailedAmount-c.RecoveredAmount, 0), code), Rate: percent(c.Rate()),
		})
		rates = append(rates, percent(c.Rate())+" "+strings.ToUpper(code))
	}
	switch len(rates) {
	case 0:
		out.Rate = percent(0)
	case 1:
		out.Rate = out.Currencies[0].Rate
	default:
		out.Rate = strings.Join(rates, " · ")
	}
	for code, c := range f.ByDeclineCode {
		out.Declines = append(out.Declines, declineRow{Code: code, Failed: c.FailedInvoices, Recovered: c.RecoveredInvoices})
	}
	slices.SortFunc(out.Declines, func(a, b declineRow) int {
		return cmp.Or(cmp.Compare(b.Failed, a.Failed), strings.Compare(a.Code, b.Code))
	})
	for _, s := range domain.RecoverySources {
		out.Sources = append(out.Sources, sourceRow{Source: s, Count: f.BySource[s]})
	}
	for _, s := range domain.TaskStatuses {
		out.Statuses = append(out.Statuses, statusRow{Status: s, Count: st.TasksByStatus[s]})
	}
	out.Chart = newChart(st.Range, f.Series)
	return out
}
