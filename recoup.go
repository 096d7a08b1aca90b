package recoup

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/recoupdev/recoup/adapters/dashboard"
	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// DefaultEventRetention is how long RunWorker keeps an event's idempotency
// lock: far past the three days over which Stripe redelivers an event.
const DefaultEventRetention = app.DefaultEventRetention

// Options is what New needs. Only WebhookSecrets is required (unless
// NoWebhook); every other zero field has a default fit for embedding.
type Options struct {
	// Storage keeps merchants, tasks, event locks and the recovery ledger.
	// nil means a fresh in-memory store (adapters/memory): nothing survives
	// a restart, and processes do not share it. For PostgreSQL pass
	// postgres.New(db) over your own *bun.DB, migrated with
	// postgres.Migrate.
	Storage ports.Storage
	// WebhookSecrets are the Stripe endpoint signing secrets (whsec_…). A
	// delivery signed with any of them is accepted, so that a secret can be
	// rotated without downtime. At least one is required, unless
	// NoWebhook.
	WebhookSecrets []string
	// NoWebhook makes a Service that receives no webhooks, such as a
	// process that only runs the worker: WebhookSecrets may then be empty,
	// and WebhookHandler, Handler and Mount panic (a wiring mistake, found
	// at start).
	NoWebhook bool
	// Livemode says which Stripe mode's events count; events of the other
	// mode are acknowledged and ignored.
	Livemode bool
	// Gateway acts on Stripe for the worker (stripe.NewGateway). nil
	// records payment retries as failed with app.ErrNoPaymentGateway;
	// emails still go out.
	Gateway ports.PaymentGateway
	// Notifier sends the customer emails. nil writes each email to Logger
	// instead of sending it (so with a nil Logger, emails go nowhere).
	Notifier ports.Notifier
	// Logger receives recoup's log lines (one per webhook delivery, worker
	// errors, refused requests). nil discards them; recoup never writes to
	// stdout or stderr on its own.
	Logger *slog.Logger
	// Observer is told what the use cases did and which webhook deliveries
	// were refused, for metrics (for example adapters/metrics); nil: nobody.
	Observer ports.Observer
	// Clock tells the time; nil is the system clock. Tests fix it. It also
	// judges the webhook signatures' timestamps (300 s tolerance), so a
	// fixed clock must be near the time the deliveries are signed at.
	Clock ports.Clock
	// Worker tunes the task worker; zero fields take app.DefaultWorkerConfig.
	Worker app.WorkerConfig
	// CursorKey authenticates the task list's cursors. Every process that
	// serves the same clients needs the same key; nil derives one from
	// WebhookSecrets, which those processes share anyway (the recoup
	// binary is built by New too, so its cursors and an embedder's agree).
	CursorKey []byte
	// ReconcileInterval is how often RunWorker reconciles: it lists, for
	// every merchant, the events Stripe could not deliver in the last
	// ReconcileWindow and puts them through the webhook's path. Zero is
	// an hour, negative never; it needs a Gateway.
	ReconcileInterval time.Duration
	// ReconcileWindow is how far back a periodic reconciliation looks;
	// zero is 72 hours (Stripe retries a delivery for three days).
	ReconcileWindow time.Duration
	// PublicURL is the deployment's external base URL (https://…). When
	// set, every customer email carries an update link PublicURL/update/…
	// that opens the Stripe customer portal (served by Handler and
	// Mount), signed with keys derived from WebhookSecrets; when empty,
	// emails link the hosted invoice.
	PublicURL string
	// EventRetention is how long RunWorker keeps idempotency locks before
	// pruning them; zero is DefaultEventRetention, negative never prunes.
	EventRetention time.Duration
	// WebhookSender delivers the messages of merchants' outbound webhook
	// endpoints, and checks the URLs they register. nil is
	// adapters/outbound, which refuses endpoints on loopback, private and
	// link-local addresses unless AllowPrivateEndpoints.
	WebhookSender ports.WebhookSender
	// AllowPrivateEndpoints lets the default WebhookSender reach endpoints
	// on loopback, private and link-local addresses, over http too: for
	// development, or receivers on the deployment's own network.
	AllowPrivateEndpoints bool
}

// Service is recoup composed from the ports a caller supplies: the use
// cases, their HTTP handlers and the task worker. It holds no global state;
// several Services may live in one process (on different storage, or on
// the same storage as several processes would).
type Service struct {
	storage         ports.Storage
	log             *slog.Logger
	clock           ports.Clock
	obs             ports.Observer
	verifier        ports.WebhookVerifier // nil without webhook secrets
	webhooks        *app.WebhookService
	tasks           *app.TaskService
	merchants       *app.MerchantService
	policies        *app.PolicyService
	links           *app.UpdateLinkService
	endpoints       *app.EndpointService
	sessions        *app.SessionService
	publicURL       string
	deliveries      *app.DeliveryWorker
	reconcile       *app.Reconciler // nil without a gateway
	reconcileEvery  time.Duration
	reconcileWindow time.Duration
	worker          *app.Worker
	cursorKey       []byte
	pruner          *app.EventPruner
}

// New composes recoup from opts: it is the one composition, which the
// recoup binary uses too. It fails with an error wrapping
// domain.ErrInvalid when opts cannot work (no webhook secret, a worker
// configuration out of range).
func New(opts Options) (*Service, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = ports.SystemClock{}
	}
	storage := opts.Storage
	if storage == nil {
		storage = memory.New(clock)
	}
	notifier := opts.Notifier
	if notifier == nil {
		notifier = email.NewLogNotifier(log)
	}
	retention := opts.EventRetention
	if retention == 0 {
		retention = DefaultEventRetention
	}
	cursorKey := opts.CursorKey
	if len(cursorKey) == 0 {
		cursorKey = httpapi.CursorKeyFromSecrets(opts.WebhookSecrets)
	}

	var verifier ports.WebhookVerifier
	if !opts.NoWebhook || hasSecret(opts.WebhookSecrets) {
		v, err := stripe.NewVerifier(opts.WebhookSecrets, stripe.WithLogger(log), stripe.WithClock(opts.Clock))
		if err != nil {
			return nil, fmt.Errorf("recoup: webhook secrets: %w", err)
		}
		verifier = v
	}
	obs := opts.Observer
	if obs == nil {
		obs = ports.NopObserver{}
	}
	if opts.PublicURL != "" && !hasSecret(opts.WebhookSecrets) {
		return nil, fmt.Errorf("recoup: %w: update links (PublicURL) are signed with keys derived from WebhookSecrets: give at least one", domain.ErrInvalid)
	}
	linkKeys := domain.LinkKeysFromSecrets(opts.WebhookSecrets)
	workerCfg := opts.Worker
	if opts.PublicURL != "" {
		workerCfg.UpdateLinks = app.UpdateLinkConfig{BaseURL: opts.PublicURL, Keys: linkKeys}
	}
	sender := opts.WebhookSender
	if sender == nil {
		sender = outbound.New(outbound.Config{AllowPrivate: opts.AllowPrivateEndpoints})
	}
	worker, err := app.NewWorker(workerCfg, app.WorkerPorts{
		Storage: storage, Gateway: opts.Gateway, Notifier: notifier, Clock: clock, Logger: log, Observer: obs,
	})
	if err != nil {
		return nil, fmt.Errorf("recoup: worker: %w", err)
	}
	svc := &Service{
		storage:  storage,
		log:      log,
		clock:    clock,
		obs:      obs,
		verifier: verifier,
		webhooks: app.NewWebhookService(storage, app.WebhookConfig{
			Livemode: opts.Livemode, Clock: clock, Logger: log, Observer: obs,
		}),
		policies:        app.NewPolicyService(storage.Policies()),
		links:           app.NewUpdateLinkService(linkKeys, storage.Merchants(), opts.Gateway, clock),
		endpoints:       app.NewEndpointService(storage.Endpoints(), sender, clock),
		deliveries:      app.NewDeliveryWorker(app.DeliveryConfig{}, storage.Outbox(), sender, clock, log, obs),
		tasks:           app.NewTaskService(storage.Tasks(), storage.Ledger(), clock),
		merchants:       app.NewMerchantService(storage.Merchants(), clock),
		publicURL:       opts.PublicURL,
		worker:          worker,
		cursorKey:       cursorKey,
		pruner:          app.NewEventPruner(storage, retention, clock, log),
		reconcileEvery:  cmp.Or(opts.ReconcileInterval, time.Hour),
		reconcileWindow: cmp.Or(opts.ReconcileWindow, DefaultReconcileWindow),
	}
	svc.sessions = app.NewSessionService(storage.Sessions(), svc.merchants, clock, 0)
	if opts.Gateway != nil {
		svc.reconcile, err = app.NewReconciler(app.ReconcileConfig{}, storage, opts.Gateway, stripe.Decoder{},
			svc.webhooks, clock, log, obs)
		if err != nil {
			return nil, fmt.Errorf("recoup: reconciler: %w", err)
		}
	}
	return svc, nil
}

// DefaultReconcileWindow is how far back RunWorker's reconciliation looks:
// Stripe retries a delivery for three days.
const DefaultReconcileWindow = 72 * time.Hour

// Reconcile lists, for every merchant, the events of the handled types
// that Stripe could not deliver in the last `since` (at most 30 days),
// and puts each through the webhook's own path (lock, then dispatch): an
// event already processed is a duplicate, and a webhook that arrives
// after it is one too. Needs Options.Gateway (ErrInvalid without).
func (s *Service) Reconcile(ctx context.Context, since time.Duration) (app.ReconcileResult, error) {
	if s.reconcile == nil {
		return app.ReconcileResult{}, fmt.Errorf("%w: reconciliation needs a Stripe gateway (Options.Gateway)", domain.ErrInvalid)
	}
	return s.reconcile.Run(ctx, since)
}

func hasSecret(secrets []string) bool {
	for _, s := range secrets {
		if strings.TrimSpace(s) != "" {
			return true
		}
	}
	return false
}

// Storage returns the storage the Service runs on, for the embedder's own
// lookups (for instance MerchantByID in a MerchantResolver).
func (s *Service) Storage() ports.Storage { return s.storage }

// Tasks returns the tenant task use cases. Each takes the merchant and
// scopes its storage query to it.
func (s *Service) Tasks() *app.TaskService { return s.tasks }

// Policies returns the dunning policy use cases: each merchant's policy,
// read and replaced.
func (s *Service) Policies() *app.PolicyService { return s.policies }

// Merchants returns the merchant use cases: onboarding a Stripe connected
// account as a merchant, and its API keys.
func (s *Service) Merchants() *app.MerchantService { return s.merchants }

// Webhooks returns the webhook use case, for a caller that receives
// Stripe's events some other way than WebhookHandler (a queue, say) and has
// verified them itself.
func (s *Service) Webhooks() *app.WebhookService { return s.webhooks }

// Worker returns the task worker, for a caller that runs it its own way
// (RunOnce in a cron job, Run beside its own loops). What RunWorker runs
// beside it is then the caller's to run too: the deliveries (Deliveries),
// pruning (PruneEvents) and, with storage that keeps running sums, their
// folds (app.FoldSums with the storage as a ports.SumFolder).
func (s *Service) Worker() *app.Worker { return s.worker }

// Endpoints returns the outbound webhook endpoint use cases: each
// merchant's endpoints and their deliveries.
func (s *Service) Endpoints() *app.EndpointService { return s.endpoints }

// Deliveries returns the outbound webhook delivery worker, for a caller
// that runs it its own way; RunWorker runs it.
func (s *Service) Deliveries() *app.DeliveryWorker { return s.deliveries }

// RunWorker runs the task worker until ctx ends, and meanwhile delivers
// the outbound webhooks, folds the storage's running sums every few
// seconds (ports.SumFolder), prunes idempotency locks older than
// Options.EventRetention every hour and, with a gateway, reconciles every
// Options.ReconcileInterval. Tasks and deliveries in flight when ctx ends
// are finished and recorded before it returns.
func (s *Service) RunWorker(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.pruner.Run(ctx) })
	wg.Go(func() { s.deliveries.Run(ctx) })
	if f, ok := s.storage.(ports.SumFolder); ok {
		wg.Go(func() { app.FoldSums(ctx, f, app.DefaultFoldInterval, s.log) })
	}
	if s.reconcile != nil && s.reconcileEvery > 0 {
		wg.Go(func() { s.reconcileEach(ctx) })
	}
	err := s.worker.Run(ctx)
	wg.Wait()
	return err
}

// reconcileEach reconciles every reconcileEvery until ctx ends. Several
// workers may do so at once: each merchant's lease lets one at a time
// list its account.
func (s *Service) reconcileEach(ctx context.Context) {
	tick := time.NewTicker(s.reconcileEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := s.reconcile.Run(ctx, s.reconcileWindow)
		if err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "reconcile", slog.String("error", err.Error()))
			continue
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "reconcile: run", slog.Int("merchants", res.Merchants), slog.Int("listed", res.Listed),
			slog.Int("processed", res.Processed), slog.Int("duplicates", res.Duplicates), slog.Int("ignored", res.Ignored),
			slog.Int("failed", res.Failed))
	}
}

// PruneEvents deletes the idempotency locks older than
// Options.EventRetention, in small batches, and returns how many it
// deleted. RunWorker calls it every hour; call it yourself if you run the
// worker some other way. With a negative retention it deletes nothing.
func (s *Service) PruneEvents(ctx context.Context) (int, error) {
	return s.pruner.Prune(ctx)
}

// WebhookHandler returns the Stripe webhook endpoint. It answers POST at
// whatever path it is mounted on, so it needs no prefix handling:
//
//	mux.Handle("POST /billing/stripe", svc.WebhookHandler())
//
// A delivery answered 200 wakes the worker, so that a task due now runs at
// once rather than at the worker's next poll.
func (s *Service) WebhookHandler() http.Handler {
	return s.wakeOnSuccess(httpapi.NewWebhookHandler(s.needVerifier(), s.webhooks, s.obs, s.log))
}

// needVerifier returns the verifier, or panics when the Service has no
// webhook secret: serving the webhook without one is a wiring mistake.
func (s *Service) needVerifier() ports.WebhookVerifier {
	if s.verifier == nil {
		panic("recoup: a Service made with Options.NoWebhook receives no webhooks")
	}
	return s.verifier
}

// TaskAPI returns the tenant task API, which routes on the paths of api/openapi.yaml
// (/api/tasks, /api/tasks/{id}, /api/tasks/{id}/retry, /api/stats). To serve
// it under a prefix, strip the prefix and keep the /api/ path:
//
//	mux.Handle("/billing/api/", http.StripPrefix("/billing", svc.TaskAPI(resolver)))
//
// resolver decides which merchant a request acts for (the embedder's own
// session, JWT or mTLS); nil means recoup's merchant API keys
// (Authorization: Bearer rk_…). Whatever the resolver, a merchant only ever
// reaches its own tasks: the use cases scope every query to the merchant
// the resolver returned.
func (s *Service) TaskAPI(resolver httpapi.MerchantResolver) http.Handler {
	return s.wakeOnSuccess(httpapi.NewTaskAPI(s.tasks, s.resolver(resolver),
		httpapi.TaskAPIOptions{CursorKey: s.cursorKey, Logger: s.log, Policies: s.policies}))
}

// AdminAPI returns the admin API (POST /admin/merchants, its API keys),
// routed on the paths of api/openapi.yaml like TaskAPI, and guarded by
// Authorization: Bearer <token>. An empty token disables it: every request
// is answered 404.
func (s *Service) AdminAPI(token string) http.Handler {
	return httpapi.NewAdminAPI(s.merchants, token, s.log)
}

// HandlerOptions tunes Handler and Mount.
type HandlerOptions struct {
	// Resolver decides the merchant of a task API request; nil means
	// recoup's merchant API keys. See TaskAPI.
	Resolver httpapi.MerchantResolver
	// AdminToken enables the admin API; empty answers 404 there.
	AdminToken string
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Requests, when set, is told about every request (route, status,
	// latency), for metrics.
	Requests httpapi.RequestObserver
	// AuthLimiter, when set, refuses client addresses that fail to
	// authenticate too often on the task and admin APIs. With a resolver
	// of your own, your login is usually limited already.
	AuthLimiter *httpapi.AuthLimiter
}

// Handler returns all of recoup's HTTP API at the paths of api/openapi.yaml:
// /webhooks/stripe, /api/…, /admin/…, /healthz and /readyz (which pings the
// storage), with JSON answers for unknown paths, wrong methods and panics,
// and the merchant dashboard at /dashboard/ (see Dashboard). Mount serves
// it under a prefix of your own mux.
func (s *Service) Handler(opts HandlerOptions) http.Handler {
	return s.handler(opts, "")
}

// handler is Handler as the browser sees it below prefix, which the
// dashboard's links and cookies need.
func (s *Service) handler(opts HandlerOptions, prefix string) http.Handler {
	return s.wakeOnSuccess(httpapi.NewServer(httpapi.Config{
		Verifier: s.needVerifier(), Webhooks: s.webhooks, Tasks: s.tasks, Merchants: s.merchants, Policies: s.policies,
		Resolver: s.resolver(opts.Resolver), AdminToken: opts.AdminToken, CursorKey: s.cursorKey,
		Ready: s.storage.Ping, Metrics: opts.Metrics, Requests: opts.Requests, Observer: s.obs, UpdateLinks: s.links,
		Endpoints: s.endpoints, Dashboard: s.Dashboard(opts, prefix),
		AuthLimiter: opts.AuthLimiter, Logger: s.log,
	}))
}

// Dashboard returns the merchant dashboard (adapters/dashboard), which
// routes on /dashboard and below; prefix is what the browser sees before
// that ("" on its own, "/billing" under Mount("/billing")), for its links
// and cookies. Handler and Mount serve it; call it yourself only to serve
// it apart from them:
//
//	mux.Handle("/billing/dashboard/", http.StripPrefix("/billing", svc.Dashboard(opts, "/billing")))
//
// Without opts.Resolver a merchant signs in with one of its API keys,
// exchanged for a stored session (sign-out ends it at once) in a cookie
// that is Secure when Options.PublicURL is https, and failed sign-ins
// count against opts.AuthLimiter. With opts.Resolver every request is
// resolved by it and there are no sign-in pages; the forms' CSRF tokens
// are then derived from the merchant and a key derived from the cursor
// key (Options.CursorKey, or the webhook secrets), so every process that
// derives the same cursor key accepts them.
func (s *Service) Dashboard(opts HandlerOptions, prefix string) http.Handler {
	cfg := dashboard.Config{
		Tasks: s.tasks, Policies: s.policies, Endpoints: s.endpoints, Cursors: httpapi.NewCursors(s.cursorKey),
		BasePath: prefix + dashboard.RoutePath, SecureCookies: strings.HasPrefix(s.publicURL, "https://"),
		Wake: s.worker.Wake, Logger: s.log,
	}
	if opts.Resolver != nil {
		mac := hmac.New(sha256.New, s.cursorKey)
		mac.Write([]byte("recoup dashboard csrf key v1"))
		cfg.Resolver, cfg.CSRFKey = opts.Resolver, mac.Sum(nil)
	} else {
		cfg.Sessions = s.sessions
	}
	if opts.AuthLimiter != nil {
		cfg.Limiter = opts.AuthLimiter
	}
	return dashboard.New(cfg)
}

// Mount serves Handler under prefix on mux: with prefix "/billing", the
// webhook is POST /billing/webhooks/stripe, the task API
// /billing/api/tasks…, the dashboard /billing/dashboard/ (with
// opts.Resolver, the embedder's sign-in rather than recoup's), readiness
// /billing/readyz, and any other path below /billing/ a JSON 404. prefix must start with "/" and not end with one.
//
// Mount registers the method-less pattern prefix+"/", which Go's ServeMux
// refuses beside a host's catch-all "GET /" (both would match GET
// /billing/x, neither is more specific): register the host's home page as
// "GET /{$}" instead. It panics, as ServeMux does, on a conflicting
// pattern or a malformed prefix: a wiring mistake, found at start.
func (s *Service) Mount(mux *http.ServeMux, prefix string, opts HandlerOptions) {
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
		panic(fmt.Sprintf("recoup: Mount prefix %q must start with / and not end with one", prefix))
	}
	mux.Handle(prefix+"/", http.StripPrefix(prefix, s.handler(opts, prefix)))
}

func (s *Service) resolver(r httpapi.MerchantResolver) httpapi.MerchantResolver {
	if r == nil {
		return httpapi.APIKeyResolver{Merchants: s.merchants}
	}
	return r
}

// wakeOnSuccess wakes the worker after a POST answered 200: a webhook
// delivery that scheduled tasks, or a task retried, both of which may have
// made a task due now. Wake never blocks, and wakes coalesce.
func (s *Service) wakeOnSuccess(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK || (rec.status == 0 && rec.wrote) {
			s.worker.Wake()
		}
	})
}

// statusRecorder notes the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ErrUnauthenticated is what a MerchantResolver wraps when a request carries
// no acceptable credentials: the task API answers it 401. It is
// httpapi.ErrUnauthenticated, repeated here so that a resolver needs no
// other import.
var ErrUnauthenticated = httpapi.ErrUnauthenticated

// ResolverFunc adapts a function to httpapi.MerchantResolver: the
// embedder's own authentication deciding which merchant a task API request
// acts for. Return an error wrapping ErrUnauthenticated to answer 401.
type ResolverFunc = httpapi.MerchantResolverFunc
