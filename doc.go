// Package recoup is the entry point for running recoup inside another Go
// service: it composes the use cases of package app from ports the caller
// supplies (storage, Stripe, email, clock, logger) and hands back
// http.Handlers to mount on the caller's own mux and a worker to run.
//
// recoup recovers failed payments for merchants who bill through Stripe
// Connect: Stripe's webhook tells it that an invoice or charge failed, and
// it turns each event, exactly once, into per-merchant tasks (retry the
// payment, email the customer) that its worker runs. Each merchant sees
// and manages only its own tasks.
//
// # Embedding
//
// New builds a Service. Only the webhook signing secrets are required;
// storage defaults to memory, the logger to discarding, emails to the log:
//
//	billing, err := recoup.New(recoup.Options{
//		Storage:        postgres.New(db), // your *bun.DB; nil: in memory
//		WebhookSecrets: []string{os.Getenv("STRIPE_WEBHOOK_SECRET")},
//		Logger:         logger,
//	})
//
// Mount serves the whole API under a prefix of your mux, with your own
// authentication deciding the merchant of each task API request:
//
//	billing.Mount(mux, "/billing", recoup.HandlerOptions{
//		Resolver: recoup.ResolverFunc(func(r *http.Request) (domain.Merchant, error) {
//			user, ok := sessions.User(r) // your login
//			if !ok {
//				return domain.Merchant{}, recoup.ErrUnauthenticated // 401
//			}
//			return billing.Storage().Merchants().MerchantByID(r.Context(), user.MerchantID)
//		}),
//	})
//	go billing.RunWorker(ctx)
//
// Stripe then posts to /billing/webhooks/stripe, and your users read their
// tasks at /billing/api/tasks. The pieces are also separate handlers
// (WebhookHandler, TaskAPI, AdminAPI) for a mux laid out differently.
// Whatever the resolver, the tenant rules stay in the use cases: every task
// use case takes the resolved merchant and scopes its storage query to it,
// so a merchant asking for another's task gets 403 and changes nothing.
//
// Merchants are onboarded with Merchants().Create, which binds a Stripe
// connected account; keep the returned merchant's ID beside your own
// account record.
//
// # Bring your own database
//
// adapters/postgres works on any bun.IDB: your *bun.DB, or a bun.Tx, in
// which case recoup's writes join your transaction (such a Service lives
// as long as the transaction, used by one goroutine). postgres.Migrate(ctx,
// db) applies recoup's migrations from code, into the first schema of the
// connection's search_path. To keep recoup's tables in a schema of their
// own beside yours on one pool, create the schema and name it first in
// the connection URL, ahead of yours:
//
//	CREATE SCHEMA recoup;
//	postgres://app@db/app?search_path=recoup,public
//
// recoup's unqualified queries then find its tables, and yours find your
// tables in public, as long as no table of yours shares a name with one of
// recoup's (merchants, tasks, processed_events…), which would be shadowed.
// Its migration bookkeeping tables are recoup_migrations and
// recoup_migration_locks, apart from bun's defaults.
//
// # Your own adapters
//
// Every port is an interface in package ports, and the behaviour each
// storage adapter must have is an exported contract suite in package
// porttest, run with one test function. examples/cachingstore shows a
// small adapter that passes it.
//
// The recoup binary (cmd/recoup) is the same composition run as a
// standalone server, configured by environment variables.
package recoup
