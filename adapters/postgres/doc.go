// Package postgres implements recoup's storage ports on PostgreSQL, with
// github.com/uptrace/bun and its pgdialect. recoup instances are stateless
// and share one database, so every rule that must hold across processes is
// enforced by the database itself: the idempotency lock is the primary key
// of processed_events, written with INSERT … ON CONFLICT DO NOTHING in the
// transaction that applies the event's effects (a concurrent duplicate waits
// for that transaction and then sees the conflict); the "at most one" task
// rules are partial unique indexes that Schedule targets with ON CONFLICT;
// the worker claims tasks, and delivery workers claim deliveries, with FOR
// UPDATE SKIP LOCKED; an invoice's record is merged under its row's lock;
// the weekly email cap and the limit of endpoints per merchant are counted
// under a transaction advisory lock (see Schema); a named lease is one row
// taken with INSERT … ON CONFLICT … DO UPDATE … WHERE; and every task,
// invoice, endpoint and delivery query names the merchant in its WHERE
// clause (but the claims and the unscoped existence checks).
//
// # Driver
//
// Connections go through pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib) rather than bun's own pgdriver: pgx is
// the maintained PostgreSQL driver for Go, and bun's pgdriver has no
// release for bun v1.3.
//
// # Statements
//
// The store's statements carry their values as positional parameters
// ($1, $2, …), apart from a text that does not change from call to call,
// and go through database/sql beneath bun: bun's own methods format the
// values into the SQL text, which makes every call a new statement for the
// server to parse and plan. In pgx's default mode, cache_statement, a
// connection prepares each text once and from then on sends only the
// values. bun still runs the transactions (InTx) and the migrations.
//
// Open leaves pgx's query mode to the URL's default_query_exec_mode
// parameter (cache_statement unless set): exec and simple_protocol keep no
// prepared statements on the server, for PgBouncer in transaction mode.
//
// # Embedding
//
// New accepts any bun.IDB, so an application that already has a *bun.DB, a
// bun.Tx or a bun.Conn can hand it over. The store sends its statements to
// the database/sql handle beneath it (in a unit of work, the *sql.Tx
// beneath the bun.Tx), in whatever query mode the driver is set to, so
// they bypass bun's query hooks. A bun.IDB of another type, such as an
// application's wrapper, has no such handle: the statements outside units
// of work then go through its own methods, formatted by bun. Every
// statement recoup sends, migrations included, is a single statement.
//
// # Invoice records
//
// The ledger keeps each invoice's domain.InvoiceRecord as one row of
// invoices, a column per field. Record does not restate the merge in SQL:
// one statement creates the row or finds it, and locks it either way
// (INSERT … ON CONFLICT … DO UPDATE … RETURNING), domain.InvoiceRecord.Apply
// merges the fact into what it returned, and an UPDATE writes the result,
// all in one transaction (the unit of work's, or one of Record's own), so a
// concurrent Record of the invoice waits for the row and merges into what
// the first one committed. Policies are a JSON document per merchant in
// merchant_policies.
//
// # Outbox
//
// An outbound message is stored as its deliveries: a row of
// webhook_deliveries per endpoint of the merchant subscribed to its type
// and not disabled, carrying the message's type and payload, so that a
// claim reads one row and an endpoint's deletion takes its deliveries
// with it (ON DELETE CASCADE) and nothing else. The rows are inserted by
// the statement of the change they report, or in its transaction: Queue's
// Finish with messages is one statement, whose data-modifying CTEs update
// the task and, only if that changed it, insert the deliveries (one round
// trip on the worker's path, as a Finish without messages); Enqueue is one
// statement in the unit of work (Tx.Outbox) or on its own. Both read the
// merchant's endpoints FOR SHARE, so that a concurrent deletion or 410
// either waits for them or is seen by them. A 410 disables the endpoint
// and marks its pending deliveries endpoint_disabled, which takes them out
// of the claim's partial indexes.
//
// # Schema
//
// Migrations (package migrations, run with Migrate) create recoup's tables,
// and its bookkeeping tables recoup_migrations and recoup_migration_locks,
// unqualified: they land in the first schema of the connection's
// search_path, and every query finds them there. To keep recoup's tables in
// a schema of your choice, create the schema and name it in the connection
// URL, which pgx passes on to the server as a run-time parameter:
//
//	CREATE SCHEMA recoup;
//	DATABASE_URL='postgres://app@db.internal/app?search_path=recoup'
//
// (or set search_path in the pgx.ConnConfig of your own *bun.DB). Several
// recoup deployments can share one database this way, each in its own
// schema.
//
// The tables:
//
//   - merchants and api_keys: the directory (keys as their SHA-256);
//   - processed_events: the idempotency locks, pruned by age;
//   - tasks: every merchant's tasks, a notify_card_expiring with its card
//     (stripe_payment_method_id); the "at most one" rules are partial
//     unique indexes, the worker's claim reads two partial indexes (pending
//     by run_at, running by lease_until);
//   - invoices and merchant_policies: the ledger's records and the
//     policies;
//   - email_reservations: the emails reserved under the weekly cap, a row
//     per merchant, customer and instant with how many; ReserveEmail and
//     ReleaseEmail take pg_advisory_xact_lock on the merchant and customer
//     (hashed) and then count in a statement of their own, which in READ
//     COMMITTED sees what the lock's previous holder committed;
//   - leases: a named lease's holder and end;
//   - webhook_endpoints: a merchant's endpoints (their events as text[]);
//     CreateEndpoint counts them under an advisory lock on the merchant;
//   - webhook_deliveries: the outbox (see Outbox), listed per endpoint
//     newest first by (endpoint_id, created_at, id), claimed through two
//     partial indexes as tasks are.
//
// Advisory locks are transaction-scoped, so they also work through
// PgBouncer in transaction mode; their keys are hashes, and two keys that
// collide only make two customers (or merchants) wait for each other.
//
// # Errors
//
// Database errors are translated in one place: a unique violation is
// domain.ErrConflict; a server that cannot be reached, a dropped
// connection, a deadline that expired while talking to the server, or a
// transaction PostgreSQL rolled back for what ran beside it (a deadlock,
// 40P01, or a serialization failure, 40001) is domain.ErrUnavailable
// (wrapping the cause), so callers can answer "try again later", or simply
// run the unit of work again.
package postgres
