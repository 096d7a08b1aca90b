// Package memory is recoup's embedded storage: every storage port, kept in
// process memory. It is a real implementation, not a test double: it is
// safe for concurrent use and has the semantics the Postgres adapter has
// (pinned down by the contract suites in package porttest), so that the
// service behaves the same whichever storage it runs on. Nothing survives a
// restart.
//
// Data is sharded per merchant. A unit of work takes a merchant's shard when
// it first touches that merchant and keeps it until it commits or rolls
// back, writing in place with an undo log: readers never see uncommitted
// data, and merchants never wait for each other. The cross-merchant indexes
// (the worker's due queue, task ownership) are updated only at commit.
//
// The webhook's unit of work is the hot path, so its costs are kept flat
// as the store grows: a shard keeps its tasks by value in fixed chunks (no
// allocation per task), its orders are B+trees of small keys, its invoice
// and subscription indexes are chains through the task slots, and a unit
// of work's undo log is a short reused list, not maps made afresh.
//
// A unit of work that touches several merchants, or takes an event lock
// after touching a merchant, can wait on another unit of work doing the
// opposite; such waits end when their context does. recoup's webhook takes
// the event lock first and touches one merchant, so it never waits that way.
package memory
