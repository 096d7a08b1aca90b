package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// MaxReconcileWindow is how far back reconciliation looks at most: Stripe
// keeps events for 30 days.
const MaxReconcileWindow = 30 * 24 * time.Hour

// ReconcileResult counts what a reconciliation run did, over every
// merchant.
type ReconcileResult struct {
	Merchants  int `json:"merchants"`  // merchants whose events were listed
	Listed     int `json:"listed"`     // undelivered events listed
	Processed  int `json:"processed"`  // put through the webhook path, and applied
	Duplicates int `json:"duplicates"` // already processed (their webhook came after all)
	Ignored    int `json:"ignored"`    // acknowledged without effect (livemode, no merchant…)
	Failed     int `json:"failed"`     // events that failed, and merchants whose listing failed
}

// Add sums b into r.
func (r *ReconcileResult) add(b ReconcileResult) {
	r.Merchants += b.Merchants
	r.Listed += b.Listed
	r.Processed += b.Processed
	r.Duplicates += b.Duplicates
	r.Ignored += b.Ignored
	r.Failed += b.Failed
}

// ReconcileConfig tunes a Reconciler; zero fields take defaults.
type ReconcileConfig struct {
	// Lease is how long one process holds a merchant's reconciliation
	// before another may take it over (it is renewed page by page).
	// Default 10 minutes.
	Lease time.Duration
	// PageSize is how many events one listing asks for. Default 100.
	PageSize int
	// Backoff is the first wait after Stripe answers 429 or fails for a
	// moment; it doubles for each of MaxTries tries. Defaults 1 s and 5.
	Backoff  time.Duration
	MaxTries int
}

// Reconciler finds the events Stripe could not deliver and puts each
// through the webhook's own path (lock, then dispatch), so that an event
// is applied exactly once whichever way it arrives.
type Reconciler struct {
	cfg      ReconcileConfig
	store    ports.Storage
	gateway  ports.PaymentGateway
	decoder  ports.EventDecoder
	webhooks *WebhookService
	clock    ports.Clock
	log      *slog.Logger
	obs      ports.Observer
}

// NewReconciler returns a reconciler; ErrInvalid without a storage, a
// gateway, a decoder or the webhook use case.
func NewReconciler(cfg ReconcileConfig, store ports.Storage, gateway ports.PaymentGateway, decoder ports.EventDecoder,
	webhooks *WebhookService, clock ports.Clock, log *slog.Logger, obs ports.Observer) (*Reconciler, error) {
	if store == nil || gateway == nil || decoder == nil || webhooks == nil {
		return nil, fmt.Errorf("%w: reconciliation needs a storage, a Stripe gateway, a decoder and the webhook use case", domain.ErrInvalid)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Minute
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 5
	}
	if clock == nil {
		clock = ports.SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = ports.NopObserver{}
	}
	return &Reconciler{cfg: cfg, store: store, gateway: gateway, decoder: decoder, webhooks: webhooks,
		clock: clock, log: log, obs: obs}, nil
}

// handledEventTypes are the event types reconciliation lists: those the
// policy acts on.
var handledEventTypes = []string{
	domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired, domain.EventCustomerSubscriptionDeleted,
	domain.EventChargeFailed, domain.EventInvoicePaid, domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible,
	domain.EventCustomerUpdated, domain.EventPaymentMethodAttached, domain.EventCustomerSourceExpiring,
}

// Run reconciles every merchant: the events of the handled types created
// since `since` ago (at most MaxReconcileWindow) that Stripe could not
// deliver. A merchant another process is reconciling is left to it. One
// merchant's failure (Stripe unreachable after the back-off) is counted
// and the run goes on; Run returns an error only when the merchants
// cannot be listed or ctx ends.
func (r *Reconciler) Run(ctx context.Context, since time.Duration) (ReconcileResult, error) {
	since = min(max(since, 0), MaxReconcileWindow)
	from := r.clock.Now().Add(-since)
	var total ReconcileResult
	after := domain.MerchantID("")
	for {
		page, err := r.store.Merchants().ListMerchants(ctx, after, 100)
		if err != nil {
			return total, fmt.Errorf("list merchants: %w", err)
		}
		for _, m := range page {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			res, ok := r.merchant(ctx, m, from)
			if !ok {
				continue
			}
			total.add(res)
		}
		if len(page) < 100 {
			return total, ctx.Err() // a run stopped midway says so
		}
		after = page[len(page)-1].ID
	}
}

// merchant reconciles one merchant under its lease; false when another
// run holds the lease, in this process or another. A lease that cannot
// be taken (storage unreachable) counts the merchant as failed.
func (r *Reconciler) merchant(ctx context.Context, m domain.Merchant, from time.Time) (ReconcileResult, bool) {
	lease := "reconcile " + string(m.ID)
	// The holder is this run's, not the process's: two runs of one
	// reconciler at once (Service.Reconcile called beside RunWorker's)
	// must not both take the lease.
	holder := "reconciler " + rand.Text()
	hold := func() (bool, error) {
		now := r.clock.Now()
		return r.store.Leases().AcquireLease(ctx, lease, holder, now, now.Add(r.cfg.Lease))
	}
	held, err := hold()
	if err != nil && ctx.Err() != nil {
		return ReconcileResult{}, false // shutting down: the next run does it
	}
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelError, "reconcile: lease", slog.String("merchant_id", string(m.ID)), slog.String("error", err.Error()))
		return ReconcileResult{Merchants: 1, Failed: 1}, true
	}
	if !held {
		return ReconcileResult{}, false
	}
	defer func() {
		if err := r.store.Leases().ReleaseLease(context.WithoutCancel(ctx), lease, holder); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "reconcile: release lease", slog.String("merchant_id", string(m.ID)), slog.String("error", err.Error()))
		}
	}()

	res := ReconcileResult{Merchants: 1}
	q := ports.EventQuery{Types: handledEventTypes, Since: from, Undelivered: true, Limit: r.cfg.PageSize}
	lost := func(err error) error { return fmt.Errorf("lost the merchant's lease: %v", err) }
	var listed [][]byte
	var failure error
	// interrupted: ctx ended (the process is stopping). That is no
	// failure: the events not applied are still undelivered, and the
	// next run lists them again.
	interrupted := false
	for {
		page, err := r.listPage(ctx, m.StripeAccountID, q)
		if err != nil && ctx.Err() != nil {
			interrupted = true
			break
		}
		if err != nil {
			failure = err
			res.Failed++
			break
		}
		listed = append(listed, page.Payloads...)
		if !page.HasMore || page.LastID == "" {
			break
		}
		q.StartingAfter = page.LastID
		if held, err := hold(); err != nil && ctx.Err() != nil {
			interrupted = true
			break
		} else if err != nil || !held {
			// Another process took the merchant over: it applies the
			// events.
			failure = lost(err)
			res.Failed++
			listed = nil
			break
		}
	}
	res.Listed = len(listed)
	// Stripe lists the newest first; the events are applied oldest first,
	// as their webhooks would have come, so that a payment comes after the
	// failure it ends (cancelling its tasks, reporting the recovery). What
	// was listed before a listing failed is applied all the same.
	for n := range listed {
		if interrupted || ctx.Err() != nil {
			interrupted = true
			break
		}
		if n > 0 && n%r.cfg.PageSize == 0 {
			if held, err := hold(); err != nil || !held {
				failure = lost(err)
				res.Failed++
				break
			}
		}
		r.event(ctx, m.StripeAccountID, listed[len(listed)-1-n], &res)
	}
	attrs := []slog.Attr{slog.String("merchant_id", string(m.ID)), slog.String("account", m.StripeAccountID),
		slog.Int("listed", res.Listed), slog.Int("processed", res.Processed), slog.Int("duplicates", res.Duplicates),
		slog.Int("ignored", res.Ignored), slog.Int("failed", res.Failed)}
	level := slog.LevelInfo
	switch {
	case failure != nil:
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", failure.Error()))
	case interrupted:
		attrs = append(attrs, slog.Bool("interrupted", true))
	}
	r.log.LogAttrs(ctx, level, "reconcile: merchant", attrs...)
	return res, true
}

// listPage lists one page, waiting and trying again while Stripe answers
// 429 or is unreachable for a moment.
func (r *Reconciler) listPage(ctx context.Context, account string, q ports.EventQuery) (ports.EventPage, error) {
	wait := r.cfg.Backoff
	for try := 1; ; try++ {
		page, err := r.gateway.Events(ctx, account, q)
		kind, _ := domain.PaymentErrorKindOf(err)
		if err == nil || kind != domain.PaymentTransient || try >= r.cfg.MaxTries {
			return page, err
		}
		select {
		case <-ctx.Done():
			return ports.EventPage{}, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// event puts one event listed on account through the webhook's path and
// counts how it ended.
func (r *Reconciler) event(ctx context.Context, account string, payload []byte, res *ReconcileResult) {
	ev, err := r.decoder.DecodeEvent(payload)
	if err != nil {
		res.Failed++
		r.obs.ReconciledEvent(ports.DeliveryFailed)
		r.log.LogAttrs(ctx, slog.LevelError, "reconcile: undecodable event", slog.String("error", err.Error()))
		return
	}
	if ev.Account == "" {
		// Listed on the connected account itself: the event is that
		// account's even where its body does not say so.
		ev.Account = account
	}
	// An event begun is applied whole, even if ctx ends meanwhile (as a
	// worker finishes its task): stopping is no failure of the event.
	out, duplicate, err := r.webhooks.handle(context.WithoutCancel(ctx), ev, sourceReconcile)
	outcome := deliveryOutcome(out, err, duplicate)
	switch outcome {
	case ports.DeliveryProcessed:
		res.Processed++
	case ports.DeliveryDuplicate:
		res.Duplicates++
	case ports.DeliveryFailed:
		res.Failed++
	default:
		res.Ignored++
	}
	r.obs.ReconciledEvent(outcome)
}
