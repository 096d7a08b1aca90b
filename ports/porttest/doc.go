// Package porttest holds the contract suites of recoup's storage ports: the
// behaviour every storage adapter must share, written once and run by each
// adapter's tests (memory, Postgres, and any adapter someone embedding
// recoup writes). An adapter's test is a few lines:
//
//	func TestStorage(t *testing.T) {
//		porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
//			return memory.New(ports.SystemClock{})
//		})
//	}
//
// What the suites do not cover, adapters do not guarantee: a new promise in
// the port docs gets its case here, not in one adapter's tests.
//
// The suites ask three things of the factory they are given:
//   - Every call returns storage that no other test touches and that holds
//     no tasks or event locks yet (a fresh memory store, a fresh Postgres
//     schema): the queue and retention cases count across merchants.
//   - Event locks are stamped with the wall clock (the database's now() or
//     ports.SystemClock), since the retention case derives its cutoff from
//     time.Now.
//   - The storage stays usable until the test that made it ends (close it
//     with t.Cleanup).
//
// Every case runs in parallel with the others and isolates itself further
// with fresh random ids. Times are built at microsecond precision (what
// Postgres keeps) and compared with Equal.
package porttest
