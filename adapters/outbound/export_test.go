package outbound

import (
	"context"
	"net/netip"
)

// WithLookup makes s resolve hosts with lookup, for tests that need a DNS
// answer no real resolver gives reliably.
func WithLookup(s *Sender, lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)) *Sender {
	s.lookup = lookup
	return s
}
