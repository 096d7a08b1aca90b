// Package memory is recoup's embedded storage: every storage port, kept in
// process memory, for running recoup without a database (the embedded
// server, tests, demos). Nothing survives a restart. It passes the same
// contract suites (package porttest) as the PostgreSQL adapter, so recoup
// behaves the same on either.
//
// It is also the reference implementation of the ports: the shortest code
// that has their semantics, meant to be read by someone who wants to know
// what a port promises or to write an adapter of their own. It favours
// being obviously right over being fast: plain maps and sorted slices, and
// one lock for the whole store.
//
// # One lock
//
// Whoever holds the store's lock may read and write anything; nobody else
// touches the store meanwhile. A unit of work (InTx) takes the lock before
// fn runs and gives it back after fn's work is committed or rolled back. A
// call made outside a unit of work (Tasks, Ledger, Queue, Merchants,
// PruneEvents) is a unit of work of its own, holding the lock for that
// call only. Waiting for the lock ends with the caller's context.
//
// So units of work run one after the other, which gives the ports'
// guarantees without further machinery: no one sees another's uncommitted
// work; a duplicate delivery of an event waits in InTx until the unit of
// work holding the event's lock has ended, and then finds the lock
// committed, or, if that one rolled back, takes it (one waiter at a time
// gets the store, so exactly one wins); no task is claimed twice. The
// price is that units of work never overlap, even for different merchants,
// where PostgreSQL's row locks let them.
//
// # Units of work
//
// Changes are made in place; each change logs its inverse. If fn returns
// an error or panics, the inverses run, newest first, and the store is as
// it was before InTx (the panic then goes on). A single call that fails
// changes nothing either, inside a unit of work or not; inside one, the
// unit of work may go on (PostgreSQL would refuse every further statement
// of the transaction instead). A Tx may be shared by goroutines while fn
// runs; used after fn has returned, it fails with domain.ErrInvalid.
//
// # Calls outside the unit of work while it runs
//
// While fn runs, its unit of work holds the lock, so a call on the same
// store made outside it (st.Tasks().Get rather than tx.Tasks().Get, or a
// nested InTx) would wait for fn, which waits for the call: a deadlock. A
// call whose context is, or derives from, the context InTx handed to fn
// fails instead, with an error wrapping domain.ErrInvalid ("called outside
// the unit of work while it runs"). Only a call made with another context
// (context.Background(), say) cannot be recognised, and waits until its
// context ends.
//
// # Data as PostgreSQL keeps it
//
// Ids are kept in their canonical lowercase spelling, as PostgreSQL's uuid
// columns give them back, and a task or merchant is found by any spelling
// of its id. Times are kept in UTC at microsecond precision, with no
// monotonic reading. Text holding a NUL character, which PostgreSQL's text
// cannot store, is refused with domain.ErrInvalid.
package memory
