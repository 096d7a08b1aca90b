// Package ports declares what recoup's core needs from the outside world, in
// domain terms: storage (the event lock, tenant-scoped tasks, merchants, the
// recovery ledger, the worker's queue, a unit of work that makes the lock and
// an event's effects atomic), Stripe, email and the clock.
//
// Every method takes a context first and documents its error contract in
// terms of the domain errors. The behaviour every storage adapter must share
// is pinned down by the contract suites in package porttest.
package ports
