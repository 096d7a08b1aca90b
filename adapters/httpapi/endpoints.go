package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

// endpointRequest is the body of POST /api/webhook-endpoints. Pointers
// tell a missing field from an empty one, so that the 400 can name it.
type endpointRequest struct {
	URL    *string   `json:"url"`
	Events *[]string `json:"events"`
}

// createdEndpointJSON is a new endpoint with its signing secret: the only
// answer that ever shows the secret.
type createdEndpointJSON struct {
	ID        domain.EndpointID `json:"id"`
	URL       string            `json:"url"`
	Events    []string          `json:"events"`
	Secret    string            `json:"secret"`
	CreatedAt string            `json:"created_at"`
}

// endpointJSON is an endpoint as the list shows it, without its secret.
type endpointJSON struct {
	ID         domain.EndpointID `json:"id"`
	URL        string            `json:"url"`
	Events     []string          `json:"events"`
	CreatedAt  string            `json:"created_at"`
	DisabledAt *string           `json:"disabled_at"`
}

type endpointListJSON struct {
	Endpoints []endpointJSON `json:"endpoints"`
}

// deliveryJSON is one message's delivery to an endpoint, without its
// payload (a list of them would be as large as every message sent).
type deliveryJSON struct {
	ID             domain.DeliveryID     `json:"id"`
	EventType      string                `json:"event_type"`
	Status         domain.DeliveryStatus `json:"status"`
	Attempts       int                   `json:"attempts"`
	LastStatusCode int                   `json:"last_status_code"`
	LastError      string                `json:"last_error"`
	CreatedAt      string                `json:"created_at"`
	DeliveredAt    *string               `json:"delivered_at"`
}

type deliveryListJSON struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	NextCursor *string        `json:"next_cursor"`
}

// optionalTime is a time for JSON, or null when it is zero (not yet, or
// never).
func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := domain.FormatTime(t)
	return &s
}

// maxEndpointIDLen bounds what is even looked at of a path's id, as for
// tasks.
const maxEndpointIDLen = 36

func endpointID(r *http.Request) (domain.EndpointID, error) {
	raw := r.PathValue("id")
	if len(raw) > maxEndpointIDLen {
		return "", invalid(fmt.Sprintf("invalid webhook endpoint id: must be a UUID (got %d characters)", len(raw)))
	}
	id, err := domain.ParseUUID(raw)
	if err != nil {
		return "", invalid(fmt.Sprintf("invalid webhook endpoint id %q: must be a UUID", raw))
	}
	return domain.EndpointID(id), nil
}

func (a *taskAPI) handleCreateEndpoint(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	var in endpointRequest
	if err := decodeJSON(w, r, MaxRequestBody, &in); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	switch {
	case in.URL == nil:
		writeError(w, r, a.log, invalid("url: is required"))
		return
	case in.Events == nil:
		writeError(w, r, a.log, invalid(`events: is required (["*"] for every type)`))
		return
	}
	// The use case checks the URL twice: its form (domain) and where it
	// leads (the sender's SSRF guard); both refusals are 400s whose text
	// is meant for the merchant.
	// An Idempotency-Key makes a repeated request (a retry after a
	// timeout) answer with the endpoint the first one created.
	key := r.Header.Get("Idempotency-Key")
	if err := domain.CheckIdempotencyKey(key); err != nil {
		writeError(w, r, a.log, invalid(fmt.Sprintf("Idempotency-Key: at most %d printable ASCII characters", domain.MaxIdempotencyKey)))
		return
	}
	e, err := a.endpoints.CreateOnce(r.Context(), m, key, *in.URL, *in.Events)
	if err != nil {
		writeError(w, r, a.log, weberr.ExplainEndpoint(err, ""))
		return
	}
	writeJSON(w, http.StatusCreated, createdEndpointJSON{
		ID: e.ID, URL: e.URL, Events: e.Events, Secret: e.EncodedSecret(), CreatedAt: domain.FormatTime(e.CreatedAt),
	})
}

func (a *taskAPI) handleListEndpoints(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	list, err := a.endpoints.List(r.Context(), m)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	out := endpointListJSON{Endpoints: make([]endpointJSON, 0, len(list))}
	for _, e := range list {
		out.Endpoints = append(out.Endpoints, endpointJSON{
			ID: e.ID, URL: e.URL, Events: e.Events, CreatedAt: domain.FormatTime(e.CreatedAt), DisabledAt: optionalTime(e.DisabledAt),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *taskAPI) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	id, err := endpointID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := a.endpoints.Delete(r.Context(), m, id); err != nil {
		writeError(w, r, a.log, weberr.ExplainEndpoint(err, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *taskAPI) handleDeliveries(w http.ResponseWriter, r *http.Request, m domain.Merchant) {
	id, err := endpointID(r)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	f, err := a.deliveryFilter(r, m, id)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	page, err := a.endpoints.Deliveries(r.Context(), m, id, f)
	if err != nil {
		writeError(w, r, a.log, weberr.ExplainEndpoint(err, id))
		return
	}
	out := deliveryListJSON{Deliveries: make([]deliveryJSON, 0, len(page.Deliveries))}
	for _, d := range page.Deliveries {
		out.Deliveries = append(out.Deliveries, deliveryJSON{
			ID: d.ID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
			LastStatusCode: d.LastStatusCode, LastError: d.LastError,
			CreatedAt: domain.FormatTime(d.CreatedAt), DeliveredAt: optionalTime(d.DeliveredAt),
		})
	}
	if page.Next != nil {
		c, err := a.cursors.encodeDelivery(*page.Next, m.ID, id)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// deliveryFilter reads and checks the deliveries' query parameters; the
// cursor must have been issued to this merchant for this endpoint.
func (a *taskAPI) deliveryFilter(r *http.Request, m domain.Merchant, id domain.EndpointID) (domain.DeliveryFilter, error) {
	q := r.URL.Query()
	if err := onlyOnce(q, "limit", "cursor"); err != nil {
		return domain.DeliveryFilter{}, err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return domain.DeliveryFilter{}, err
	}
	f := domain.DeliveryFilter{Limit: limit}
	if c := q.Get("cursor"); c != "" {
		after, err := a.cursors.decodeDelivery(c, m.ID, id)
		if err != nil {
			return f, err
		}
		f.After = &after
	}
	return f, nil
}
