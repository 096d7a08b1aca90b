// Package memory is recoup's embedded storage: every storage port, kept in
// process memory, for running recoup without a database. Nothing survives
// a restart. It passes the contract suites of package porttest, as the
// PostgreSQL adapter does, so recoup behaves the same on either.
//
// It is also the reference implementation of the ports, for reading: plain
// maps and sorted slices, indexed only where a realistic load would
// otherwise scan a merchant's whole history, and one lock for the whole
// store. It is meant to be obviously right rather than fast.
//
// # One lock
//
// Whoever holds the store's lock reads and writes as it likes. A unit of
// work (InTx) holds it from before fn runs until fn's work is committed or
// rolled back; a call outside one (Tasks, Ledger, Policies, Queue,
// Emails, Leases, Endpoints, Outbox, Merchants, PruneEvents) holds it for
// that call. A wait for it ends with the caller's context. Units of work
// thus run one at a time, which gives the ports' guarantees without more
// machinery: nobody sees uncommitted work; a duplicate delivery of an
// event waits in InTx for the unit of work that holds the event's lock
// and then finds it committed, or, if that one rolled back, takes it, one
// waiter after the other, so exactly one wins; no task or delivery is
// claimed twice, no lease held twice, no email cap passed. The price:
// units of work for different merchants do not overlap, as they would on
// PostgreSQL.
//
// # Units of work
//
// Changes are made in place, each logging its inverse. If fn returns an
// error or panics, the inverses run, newest first, and the store is as it
// was (the panic goes on). A single call that fails changes nothing either;
// inside a unit of work, the unit may go on, whereas PostgreSQL would
// refuse the rest of the transaction. A Tx may be shared by goroutines
// while fn runs; after fn returns, it fails with domain.ErrInvalid.
//
// While fn runs, a call on the same store made outside its unit of work
// (st.Tasks().Get instead of tx.Tasks().Get, or a nested InTx) would wait
// for fn, which waits for the call. Made with the context InTx handed to
// fn, or one derived from it, such a call fails instead, with an error
// wrapping domain.ErrInvalid ("called outside the unit of work while it
// runs"); made with another context, it waits until that context ends.
//
// # Data as PostgreSQL keeps it
//
// Ids are kept in the canonical lowercase spelling of PostgreSQL's uuid
// columns, and a task, merchant or endpoint is found by any spelling of
// its id.
// Times are kept in UTC at microsecond precision, without a monotonic
// reading. Text holding a NUL character, which PostgreSQL's text cannot
// store, is refused with domain.ErrInvalid. What goes in or comes out is
// a copy, as a row is: a caller that changes a policy, an invoice record,
// an endpoint or a message it stored or read changes nothing stored.
package memory
