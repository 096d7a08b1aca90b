package outbound

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestRefusal(t *testing.T) {
	for _, c := range []struct {
		addr string
		want string // the reason without AllowPrivate; "" allowed
		lax  string // the reason with AllowPrivate
	}{
		{"8.8.8.8", "", ""},
		{"93.184.215.14", "", ""},
		{"2606:4700:4700::1111", "", ""},
		{"100.63.255.255", "", ""},
		{"100.128.0.0", "", ""},
		{"172.15.255.255", "", ""},
		{"172.32.0.0", "", ""},
		{"::ffff:93.184.215.14", "", ""},
		{"64:ff9b::5db8:d70e", "", ""}, // NAT64 of 93.184.215.14

		{"127.0.0.1", "a loopback address", ""},
		{"127.255.255.254", "a loopback address", ""},
		{"::1", "a loopback address", ""},
		{"10.0.0.1", "a private address", ""},
		{"172.16.0.1", "a private address", ""},
		{"172.31.255.255", "a private address", ""},
		{"192.168.0.1", "a private address", ""},
		{"fc00::1", "a private address", ""},
		{"fd12:3456::1", "a private address", ""},
		{"fec0::1", "a private address", ""},
		{"169.254.0.1", "a link-local address", ""},
		{"fe80::1", "a link-local address", ""},
		{"fe80::1%eth0", "a link-local address", ""},
		{"224.0.0.1", "a link-local address", ""}, // link-local multicast
		{"ff02::1", "a link-local address", ""},
		{"239.255.255.250", "a multicast address", ""},
		{"ff0e::1", "a multicast address", ""},
		{"0.0.0.0", "an unspecified address", ""},
		{"::", "an unspecified address", ""},
		{"0.1.2.3", "a reserved address", ""},
		{"100.64.0.1", "a shared (carrier-grade NAT) address", ""},
		{"100.127.255.255", "a shared (carrier-grade NAT) address", ""},
		{"192.0.0.8", "a reserved address", ""},
		{"192.0.2.1", "a documentation address", ""},
		{"198.18.0.1", "a reserved address", ""},
		{"198.51.100.1", "a documentation address", ""},
		{"203.0.113.1", "a documentation address", ""},
		{"240.0.0.1", "a reserved address", ""},
		{"255.255.255.255", "a reserved address", ""},
		{"2001:db8::1", "a documentation address", ""},
		{"3fff::1", "a documentation address", ""},
		{"100::1", "a reserved address", ""},
		{"2001::1", "a reserved address", ""},       // Teredo
		{"2002:a00:1::1", "a reserved address", ""}, // 6to4 of 10.0.0.1
		{"64:ff9b:1::a00:1", "a reserved address", ""},

		// IPv4 in IPv6 clothing is judged as the IPv4 address.
		{"::ffff:127.0.0.1", "a loopback address", ""},
		{"::ffff:10.0.0.1", "a private address", ""},
		{"::ffff:0.0.0.0", "an unspecified address", ""},
		{"64:ff9b::a00:1", "a private address", ""},
		{"64:ff9b::7f00:1", "a loopback address", ""},
		{"::7f00:1", "a reserved address", ""}, // IPv4-compatible 127.0.0.1

		// The metadata services, whatever the setting.
		{"169.254.169.254", "the cloud metadata address", "the cloud metadata address"},
		{"::ffff:169.254.169.254", "the cloud metadata address", "the cloud metadata address"},
		{"64:ff9b::a9fe:a9fe", "the cloud metadata address", "the cloud metadata address"},
		{"fd00:ec2::254", "the cloud metadata address", "the cloud metadata address"},
		{"100.100.100.200", "the cloud metadata address", "the cloud metadata address"},
	} {
		t.Run(c.addr, func(t *testing.T) {
			is := is.New(t)
			ip := netip.MustParseAddr(c.addr)
			is.Equal(refusal(ip, false), c.want) // without AllowPrivate
			is.Equal(refusal(ip, true), c.lax)   // with AllowPrivate
		})
	}
	t.Run("zero", func(t *testing.T) {
		is := is.New(t)
		is.Equal(refusal(netip.Addr{}, false), "not an address") // fails closed
	})
}

func TestControl(t *testing.T) {
	strict, lax := New(Config{}), New(Config{AllowPrivate: true})
	for _, c := range []struct {
		s       *Sender
		address string
		refused string // "" allowed
	}{
		{strict, "93.184.215.14:443", ""},
		{strict, "[2606:4700:4700::1111]:443", ""},
		{strict, "127.0.0.1:8080", "127.0.0.1 is a loopback address"},
		{strict, "[::1]:443", "::1 is a loopback address"},
		{strict, "[fe80::1%eth0]:443", "fe80::1 is a link-local address"},
		{strict, "10.1.2.3:443", "10.1.2.3 is a private address"},
		{strict, "example.com:443", "is not an IP address"},
		{lax, "127.0.0.1:8080", ""},
		{lax, "169.254.169.254:80", "169.254.169.254 is the cloud metadata address"},
	} {
		t.Run(c.address, func(t *testing.T) {
			is := is.New(t)
			err := c.s.control("tcp", c.address, nil)
			if c.refused == "" {
				is.NoErr(err)
				return
			}
			is.True(errors.Is(err, ErrAddressRefused))
			is.True(strings.Contains(err.Error(), c.refused)) // the error names the address and why
		})
	}
}

// TestNoProxy: a proxy from the environment would be the address dialed,
// and the guard would check it instead of the endpoint's.
func TestNoProxy(t *testing.T) {
	is := is.New(t)
	tr, ok := New(Config{}).client.Transport.(*http.Transport)
	is.True(ok)
	is.True(tr.Proxy == nil)       // no proxy, from the environment or elsewhere
	is.True(tr.DialContext != nil) // every connection goes through the guarded dialer
	is.True(tr.DialTLSContext == nil)
}
