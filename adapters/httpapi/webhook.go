package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
	"github.com/recoupdev/recoup/ports"
)

// MaxWebhookBody is the largest webhook body accepted (413 above).
// Stripe's events are a few kilobytes; the limit bounds what a stranger can
// make the server read before the signature is checked.
const MaxWebhookBody = 256 << 10

type webhookHandler struct {
	verifier ports.WebhookVerifier
	webhooks *app.WebhookService
	obs      ports.Observer
	log      *slog.Logger
}

// NewWebhookHandler returns the Stripe webhook endpoint. It answers POST at
// whatever path it is mounted on (any other method is 405), so an embedder
// mounts it directly: mux.Handle("POST /billing/stripe", h).
//
// The delivery's log line is written by the use case; this handler logs
// only deliveries it refuses before the use case (bad signature, too
// large), at WARN, and reports them to obs, which is the use case's
// observer too (nil: nobody). A nil logger discards. It panics if
// verifier or webhooks is nil.
func NewWebhookHandler(verifier ports.WebhookVerifier, webhooks *app.WebhookService, obs ports.Observer, log *slog.Logger) http.Handler {
	if verifier == nil || webhooks == nil {
		panic("httpapi: NewWebhookHandler needs a verifier and a webhook service")
	}
	if obs == nil {
		obs = ports.NopObserver{}
	}
	return &webhookHandler{verifier: verifier, webhooks: webhooks, obs: obs, log: orDiscard(log)}
}

// webhookJSON is the webhook's answer. Tasks is nil (omitted) unless the
// event was processed and acted on.
type webhookJSON struct {
	Processed bool            `json:"processed"`
	Action    string          `json:"action"`
	Tasks     []domain.TaskID `json:"tasks,omitzero"`
	Reason    string          `json:"reason,omitempty"`
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(http.MethodPost)(w, r)
		return
	}
	start := time.Now()
	if r.ContentLength > MaxWebhookBody {
		h.reject(w, r, start, http.StatusRequestEntityTooLarge, bodyTooLarge(MaxWebhookBody))
		return
	}
	signature := r.Header.Get("Stripe-Signature")
	if err := h.verifier.CheckHeader(signature); err != nil {
		// Hopeless whatever the body: answer without reading it, so that
		// a stranger cannot hold the connection for the read timeout.
		w.Header().Set("Connection", "close")
		h.reject(w, r, start, http.StatusBadRequest, err)
		return
	}
	payload, err := readBody(w, r, MaxWebhookBody)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		h.reject(w, r, start, status, err)
		return
	}
	ev, err := h.verifier.VerifyEvent(*payload, signature)
	putBody(payload)
	if err != nil {
		h.reject(w, r, start, http.StatusBadRequest, err)
		return
	}
	res, err := h.webhooks.Handle(r.Context(), ev)
	if err != nil {
		// Handle has logged the failure with the event's fields.
		writeErrorStatus(w, webhookStatusOf(err), err)
		return
	}
	out := webhookJSON{Processed: res.Processed, Action: res.Action, Reason: res.Reason}
	if res.Processed && res.Action != domain.ActionIgnored {
		out.Tasks = res.Tasks
		if out.Tasks == nil {
			out.Tasks = []domain.TaskID{}
		}
	}
	writeJSONBody(w, http.StatusOK, out.appendJSON(make([]byte, 0, 96+40*len(out.Tasks)+len(out.Reason))))
}

// appendJSON appends the answer as json.Encoder writes it: the webhook
// answers every delivery, so it skips reflection.
func (a webhookJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"processed":`...)
	b = strconv.AppendBool(b, a.Processed)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, a.Action)
	if a.Tasks != nil {
		b = append(b, `,"tasks":[`...)
		for i, id := range a.Tasks {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, string(id))
		}
		b = append(b, ']')
	}
	if a.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, a.Reason)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: ids and reasons are plain ASCII, and any other string goes
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// reject answers a delivery refused before the use case, and reports it to
// the observer (the use case never saw it). The reason is the
// verifier's message, written for the sender; it never holds a secret.
func (h *webhookHandler) reject(w http.ResponseWriter, r *http.Request, start time.Time, status int, err error) {
	h.obs.WebhookDelivery(ports.EventTypeUnknown, ports.DeliveryRejected, time.Since(start))
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook rejected",
		slog.Int("status", status), slog.String("reason", err.Error()),
		slog.String("remote_addr", r.RemoteAddr))
	writeErrorStatus(w, status, weberr.WithMessage(err, err.Error()))
}

var errTooLarge = errors.New("request body too large")

// bodyTooLarge is errTooLarge with a message for the client.
func bodyTooLarge(limit int64) error {
	return weberr.WithMessage(errTooLarge, fmt.Sprintf("request body larger than %d KiB", limit>>10))
}

// bodies recycles webhook body buffers: the verifier keeps nothing of the
// payload (ports.WebhookVerifier), so a delivery's buffer can serve the
// next one once the event is decoded.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody is the largest buffer bodies keeps, so that one huge
// delivery does not pin its memory for good; Stripe's events are a few
// kilobytes.
const maxPooledBody = 64 << 10

// readBody reads the whole body, at most limit bytes, into a buffer from
// bodies (give it back with putBody): more is errTooLarge (with a message
// for the client), a broken read is ErrInvalid.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*[]byte, error) {
	if r.ContentLength > limit {
		return nil, bodyTooLarge(limit) // refused before reading a byte
	}
	buf := bodies.Get().(*[]byte)
	body := http.MaxBytesReader(w, r.Body, limit)
	var err error
	if n := int(r.ContentLength); n >= 0 {
		// The usual case: the length is announced, so read exactly that
		// (net/http stops the body there).
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		*buf = (*buf)[:n]
		_, err = io.ReadFull(body, *buf)
	} else {
		b := bytes.NewBuffer((*buf)[:0])
		_, err = b.ReadFrom(body)
		*buf = b.Bytes()
	}
	if err != nil {
		putBody(buf)
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, bodyTooLarge(limit)
		}
		return nil, weberr.WithMessage(fmt.Errorf("%w: read body: %w", domain.ErrInvalid, err), "could not read request body")
	}
	return buf, nil
}

// putBody gives a buffer from readBody back.
func putBody(buf *[]byte) {
	if cap(*buf) <= maxPooledBody {
		*buf = (*buf)[:0]
		bodies.Put(buf)
	}
}
