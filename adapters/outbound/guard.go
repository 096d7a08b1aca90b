package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
)

// ErrAddressRefused is in the error of a connection the network guard
// refused: the endpoint's host resolved to an address recoup may not reach.
var ErrAddressRefused = errors.New("address refused")

// metadataAddrs are the cloud providers' instance metadata services, which
// hand out credentials to whoever asks from the instance: refused even
// when private addresses are allowed.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, Oracle, DigitalOcean…
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// refusedRange is a range of addresses the guard refuses beyond what
// net/netip's predicates name, with the reason the merchant is told.
type refusedRange struct {
	prefix netip.Prefix
	reason string
}

// refusedRanges are the ranges that are not globally reachable (IANA's
// special-purpose registries) but that netip.Addr's predicates do not
// cover. A range is here because something reaching it is either inside
// the operator's network or not a real endpoint.
var refusedRanges = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "a reserved address"}, // "this network"; 0.0.0.0 itself is unspecified
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"}, // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address"}, // benchmarking
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"}, // and 255.255.255.255
	// IPv4-compatible (::a.b.c.d, deprecated) and the rest of ::/8 but
	// the IPv4-mapped and NAT64 forms, which are unwrapped before this.
	{netip.MustParsePrefix("::/8"), "a reserved address"},
	{netip.MustParsePrefix("100::/64"), "a reserved address"},  // discard-only
	{netip.MustParsePrefix("2001::/23"), "a reserved address"}, // IETF protocol assignments, Teredo
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a reserved address"}, // 6to4: tunnels to any IPv4 address
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("fec0::/10"), "a private address"}, // site-local, deprecated
}

// nat64 is the well-known NAT64 prefix: on an IPv6-only network with
// DNS64, 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// refusal says why recoup must not connect to ip, as a phrase for the
// merchant ("a loopback address"), or "" when it may. With allowPrivate
// only the metadata addresses are refused.
func refusal(ip netip.Addr, allowPrivate bool) string {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if slices.Contains(metadataAddrs, ip) {
		return "the cloud metadata address"
	}
	switch {
	case allowPrivate:
		return ""
	case !ip.IsValid():
		return "not an address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// control is the net.Dialer's Control function: it runs for every
// connection attempt, after DNS, with the address actually dialed, so
// that what CheckURL approved cannot be swapped for something else later.
func (s *Sender) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address and port", ErrAddressRefused, address)
	}
	if why := refusal(ap.Addr(), s.allowPrivate); why != "" {
		return fmt.Errorf("%w: %s is %s", ErrAddressRefused, ap.Addr().WithZone(""), why)
	}
	return nil
}
