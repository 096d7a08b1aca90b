package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

// TaskAPIOptions tunes NewTaskAPI.
type TaskAPIOptions struct {
	// CursorKey authenticates list cursors. Give every process that serves
	// the same clients the same key; empty means a random key per process,
	// so cursors stop working at a restart or on another instance.
	CursorKey []byte
	// Logger receives 5xx errors; nil discards.
	Logger *slog.Logger
	// AuthLimiter refuses clients that fail to authenticate too often; nil
	// means no limit.
	AuthLimiter *AuthLimiter
	// Policies serves GET and PUT /api/policy, the merchant's dunning
	// policy; nil leaves them out (404).
	Policies *app.PolicyService
	// Endpoints serves /api/webhook-endpoints, the merchant's outbound
	// webhook endpoints and their deliveries; nil leaves them out (404).
	Endpoints *app.EndpointService
}

// taskAPI is the tenant task API. Each handler receives the merchant that
// the resolver found and passes it to the use case, which scopes storage to
// it: no handler can reach a task without a merchant.
type taskAPI struct {
	tasks     *app.TaskService
	policies  *app.PolicyService   // nil: no policy routes
	endpoints *app.EndpointService // nil: no webhook endpoint routes
	cursors   cursorCodec
	log       *slog.Logger
}

// NewTaskAPI returns the tenant task API (GET /api/tasks, GET /api/stats,
// GET, DELETE /api/tasks/{id}, POST /api/tasks/{id}/retry, with
// opts.Policies GET and PUT /api/policy, and with opts.Endpoints POST and
// GET /api/webhook-endpoints, DELETE /api/webhook-endpoints/{id} and GET
// /api/webhook-endpoints/{id}/deliveries). Every request,
// whatever its path, is first resolved to a merchant by resolver; a request
// it refuses is answered 401 before any routing, and with
// opts.AuthLimiter a client address with too many such refusals is
// answered 429.
//
// It routes on the documented paths; to serve it under a prefix, strip the
// prefix: mux.Handle("/billing/api/", http.StripPrefix("/billing", h)).
//
// It panics if tasks or resolver is nil: that is a wiring mistake, found
// at start.
func NewTaskAPI(tasks *app.TaskService, resolver MerchantResolver, opts TaskAPIOptions) http.Handler {
	if tasks == nil || resolver == nil {
		panic("httpapi: NewTaskAPI needs a task service and a merchant resolver")
	}
	api := &taskAPI{tasks: tasks, policies: opts.Policies, endpoints: opts.Endpoints,
		cursors: newCursorCodec(opts.CursorKey), log: orDiscard(opts.Logger)}
	mux := http.NewServeMux()
	api.routes(mux)
	return limitBody(MaxRequestBody, requireMerchant(resolver, opts.AuthLimiter, api.log, recordRoute(mux)))
}

// maxTaskIDLen bounds what is even looked at of a path's id; ParseTaskID
// rejects anything but the 36-character form.
const maxTaskIDLen = 36

func (a *taskAPI) taskID(r *http.Request) (domain.TaskID, error) {
	raw := r.PathValue("id")
	if len(raw) > maxTaskIDLen {
		return "", invalid(fmt.Sprintf("invalid task id: must be a UUID (got %d characters)", len(raw)))
	}
	id, err := domain.ParseTaskID(raw)
	if err != nil {
		return "", invalid(fmt.Sprintf("invalid task id %q: must be a UUID", raw))
	}
	return id, nil
}

func (a *taskAPI) handleList(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	filter, err := a.listFilter(r, m)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	page, err := a.tasks.List(r.Context(), m, filter)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	out := taskListJSON{Tasks: page.Tasks}
	if page.Next != nil {
		c, err := a.cursors.encode(*page.Next, m.ID)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// listFilter reads and checks the list's query parameters.
func (a *taskAPI) listFilter(r *http.Request, m domain.Merchant) (domain.TaskFilter, error) {
	q := r.URL.Query()
	if err := onlyOnce(q, "status", "limit", "cursor"); err != nil {
		return domain.TaskFilter{}, err
	}
	f := domain.TaskFilter{Limit: domain.DefaultPageSize}
	switch s := q.Get("status"); s {
	case "", "all":
	default:
		if !domain.TaskStatus(s).Valid() {
			return f, invalid(fmt.Sprintf("unknown status %.40q: must be one of %s or all", s, statusList()))
		}
		f.Status = domain.TaskStatus(s)
	}
	limit, err := pageLimit(q)
	if err != nil {
		return f, err
	}
	f.Limit = limit
	if c := q.Get("cursor"); c != "" {
		after, err := a.cursors.decode(c, m.ID)
		if err != nil {
			return f, err
		}
		f.After = &after
	}
	return f, nil
}

// onlyOnce refuses a query that gives one of names more than once.
func onlyOnce(q url.Values, names ...string) error {
	for _, name := range names {
		if len(q[name]) > 1 {
			return invalid(fmt.Sprintf("query parameter %q given more than once", name))
		}
	}
	return nil
}

// pageLimit reads a list's limit parameter: domain.DefaultPageSize when
// absent.
func pageLimit(q url.Values) (int, error) {
	s, ok := q["limit"]
	if !ok {
		return domain.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s[0])
	if err != nil || n < 1 || n > domain.MaxPageSize || !isDigits(s[0]) {
		return 0, invalid(fmt.Sprintf("invalid limit %.20q: must be a whole number from 1 to %d", s[0], domain.MaxPageSize))
	}
	return n, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func statusList() string {
	names := make([]string, len(domain.TaskStatuses))
	for i, s := range domain.TaskStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func (a *taskAPI) handleGet(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	id, err := a.taskID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	t, err := a.tasks.Get(r.Context(), m, id)
	if err != nil {
		writeError(w, r, a.log, weberr.ExplainTask(err, id, ""))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (a *taskAPI) handleRetry(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	id, err := a.taskID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	t, err := a.tasks.Retry(r.Context(), m, id)
	if err != nil {
		writeError(w, r, a.log, weberr.ExplainTask(err, id, weberr.RetryConflict))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (a *taskAPI) handleDelete(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	id, err := a.taskID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := a.tasks.Delete(r.Context(), m, id); err != nil {
		writeError(w, r, a.log, weberr.ExplainTask(err, id, weberr.DeleteConflict))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *taskAPI) handleStats(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	from, to, err := statsDays(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	st, err := a.tasks.Stats(r.Context(), m, from, to)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newStatsJSON(st))
}

// statsDays reads the stats' optional from and to, UTC days written
// YYYY-MM-DD; nil for one not given. The use case checks the span.
func statsDays(r *http.Request) (from, to *time.Time, err error) {
	q := r.URL.Query()
	day := func(name string) (*time.Time, error) {
		v, ok := q[name]
		switch {
		case !ok:
			return nil, nil
		case len(v) > 1:
			return nil, invalid(fmt.Sprintf("query parameter %q given more than once", name))
		}
		d, err := time.Parse(domain.DateLayout, v[0])
		if err != nil {
			return nil, invalid(fmt.Sprintf("invalid %s %.20q: must be a date written YYYY-MM-DD", name, v[0]))
		}
		return &d, nil
	}
	if from, err = day("from"); err != nil {
		return nil, nil, err
	}
	to, err = day("to")
	return from, to, err
}

type taskListJSON struct {
	Tasks      []domain.Task `json:"tasks"` // in their own JSON form
	NextCursor *string       `json:"next_cursor"`
}

type currencyJSON struct {
	FailedAmount    int64   `json:"failed_amount"`
	RecoveredAmount int64   `json:"recovered_amount"`
	RecoveryRate    float64 `json:"recovery_rate"`
}

type dayJSON struct {
	Date            string `json:"date"`
	Currency        string `json:"currency"`
	FailedAmount    int64  `json:"failed_amount"`
	RecoveredAmount int64  `json:"recovered_amount"`
}

type declineJSON struct {
	FailedInvoices    int `json:"failed_invoices"`
	RecoveredInvoices int `json:"recovered_invoices"`
}

type statsJSON struct {
	ByCurrency    map[string]currencyJSON       `json:"by_currency"`     // all time
	TasksByStatus map[domain.TaskStatus]int     `json:"tasks_by_status"` // all time
	From          string                        `json:"from"`
	To            string                        `json:"to"`
	Series        []dayJSON                     `json:"series"`
	ByDeclineCode map[string]declineJSON        `json:"by_decline_code"`
	BySource      map[domain.RecoverySource]int `json:"by_source"`
}

// newStatsJSON lists every status and every source, zeros included, so
// clients need not know which exist; an empty series or breakdown is []
// or {}, never null.
func newStatsJSON(st domain.RecoveryStats) statsJSON {
	f := st.Figures
	out := statsJSON{
		ByCurrency:    make(map[string]currencyJSON, len(st.ByCurrency)),
		TasksByStatus: make(map[domain.TaskStatus]int, len(domain.TaskStatuses)),
		From:          st.Range.From.Format(domain.DateLayout),
		To:            st.Range.To.Format(domain.DateLayout),
		Series:        make([]dayJSON, len(f.Series)),
		ByDeclineCode: make(map[string]declineJSON, len(f.ByDeclineCode)),
		BySource:      make(map[domain.RecoverySource]int, len(domain.RecoverySources)),
	}
	for cur, c := range st.ByCurrency {
		out.ByCurrency[cur] = currencyJSON{FailedAmount: c.FailedAmount, RecoveredAmount: c.RecoveredAmount, RecoveryRate: c.Rate()}
	}
	for _, s := range domain.TaskStatuses {
		out.TasksByStatus[s] = st.TasksByStatus[s]
	}
	for i, d := range f.Series {
		out.Series[i] = dayJSON{Date: d.Date, Currency: d.Currency, FailedAmount: d.FailedAmount, RecoveredAmount: d.RecoveredAmount}
	}
	for code, d := range f.ByDeclineCode {
		out.ByDeclineCode[code] = declineJSON{FailedInvoices: d.FailedInvoices, RecoveredInvoices: d.RecoveredInvoices}
	}
	for _, s := range domain.RecoverySources {
		out.BySource[s] = f.BySource[s]
	}
	return out
}
