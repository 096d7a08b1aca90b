package dashboard

import (
	"crypto/rand"
	"net/http"
	"slices"
	"strings"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

type endpointsData struct {
	Endpoints  []domain.WebhookEndpoint
	EventTypes []string
	// The form's values, shown again after a refusal.
	URL    string
	Events []string
	// Created is the endpoint just created, whose secret is shown this
	// once.
	Created *createdEndpoint
	// FormKey is the form's idempotency key, new at each showing: the same
	// form posted again (a reload of the page its post answered) shows the
	// endpoint it created instead of creating another.
	FormKey string
}

type createdEndpoint struct {
	URL    string
	Secret string
}

// Checked reports whether the form's event type ev is ticked.
func (data endpointsData) Checked(ev string) bool { return slices.Contains(data.Events, ev) }

func (d *dashboard) endpointsPage(w http.ResponseWriter, r *http.Request, v visitor, status int, p page, data endpointsData) {
	list, err := d.cfg.Endpoints.List(r.Context(), v.merchant)
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	data.Endpoints, data.EventTypes, data.FormKey = list, domain.OutboundEventTypes, rand.Text()
	if data.Events == nil {
		data.Events = []string{"*"}
	}
	p.Title, p.Nav, p.Data = "Webhook endpoints", "webhooks", data
	d.render(w, r, status, "webhooks", p, v)
}

func (d *dashboard) handleEndpoints(w http.ResponseWriter, r *http.Request, v visitor) {
	d.endpointsPage(w, r, v, http.StatusOK, page{Flash: flashOf(r)}, endpointsData{})
}

func (d *dashboard) handleCreateEndpoint(w http.ResponseWriter, r *http.Request, v visitor) {
	data := endpointsData{URL: strings.TrimSpace(r.PostForm.Get("url")), Events: r.PostForm["events"]}
	if len(data.Events) == 0 {
		d.endpointsPage(w, r, v, http.StatusBadRequest, page{Error: "events: choose at least one event type, or all"}, data)
		return
	}
	// The use case checks the URL's form and where it leads; both
	// refusals are 400s whose text is meant for the merchant.
	e, err := d.cfg.Endpoints.CreateOnce(r.Context(), v.merchant, r.PostForm.Get("idempotency_key"), data.URL, data.Events)
	if err != nil {
		err = weberr.ExplainEndpoint(err, "")
		if status := statusOf(err); status == http.StatusBadRequest || status == http.StatusConflict {
			d.endpointsPage(w, r, v, status, page{Error: messageOf(err, status)}, data)
			return
		}
		d.fail(w, r, v, err)
		return
	}
	d.endpointsPage(w, r, v, http.StatusCreated, page{Flash: "Webhook endpoint created."},
		endpointsData{Created: &createdEndpoint{URL: e.URL, Secret: e.EncodedSecret()}})
}

// endpointID reads the path's endpoint id; a 400 unless it is a UUID.
func endpointID(r *http.Request) (domain.EndpointID, error) {
	raw := r.PathValue("id")
	id, err := domain.ParseUUID(raw)
	if len(raw) > 36 || err != nil {
		return "", weberr.WithMessage(domain.ErrInvalid, "invalid webhook endpoint id: must be a UUID")
	}
	return domain.EndpointID(id), nil
}

func (d *dashboard) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request, v visitor) {
	id, err := endpointID(r)
	if err == nil {
		if err = d.cfg.Endpoints.Delete(r.Context(), v.merchant, id); err != nil {
			err = weberr.ExplainEndpoint(err, id)
		}
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.redirect(w, r, "/webhooks?done=endpoint-deleted")
}

type deliveriesData struct {
	Endpoint   domain.WebhookEndpoint
	Deliveries []domain.Delivery
	Next       string
}

func (d *dashboard) handleDeliveries(w http.ResponseWriter, r *http.Request, v visitor) {
	id, err := endpointID(r)
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	f := domain.DeliveryFilter{Limit: domain.DefaultPageSize}
	if c := r.URL.Query().Get("cursor"); c != "" {
		after, err := d.cfg.Cursors.DecodeDelivery(c, v.merchant.ID, id)
		if err != nil {
			d.fail(w, r, v, weberr.WithMessage(domain.ErrInvalid, "invalid cursor"))
			return
		}
		f.After = &after
	}
	// Deliveries scopes to the merchant and tells 403 from 404.
	pg, err := d.cfg.Endpoints.Deliveries(r.Context(), v.merchant, id, f)
	if err != nil {
		d.fail(w, r, v, weberr.ExplainEndpoint(err, id))
		return
	}
	list, err := d.cfg.Endpoints.List(r.Context(), v.merchant)
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	data := deliveriesData{Deliveries: pg.Deliveries}
	for _, e := range list {
		if e.ID == id {
			data.Endpoint = e
		}
	}
	if data.Endpoint.ID == "" { // deleted in between
		d.fail(w, r, v, weberr.ExplainEndpoint(domain.ErrNotFound, id))
		return
	}
	if pg.Next != nil {
		c, err := d.cfg.Cursors.EncodeDelivery(*pg.Next, v.merchant.ID, id)
		if err != nil {
			d.fail(w, r, v, err)
			return
		}
		data.Next = c
	}
	d.render(w, r, http.StatusOK, "endpoint", page{Title: "Deliveries", Nav: "webhooks", Data: data}, v)
}
