// Package outbound sends recoup's outbound webhooks to merchants' endpoints:
// it implements ports.WebhookSender with net/http, signing each message per
// the Standard Webhooks specification with
// github.com/standard-webhooks/standard-webhooks/libraries/go.
//
// # The network guard
//
// An endpoint URL is chosen by a merchant, so sending to it would let any
// merchant make recoup reach its own network (server-side request
// forgery): the cloud metadata service, a database's admin port, a sidecar
// on loopback. Two checks stand in the way, and only the second is a
// guarantee:
//
//   - CheckURL, when an endpoint is created, refuses a URL whose host
//     resolves to an address recoup may not reach, so that the merchant is
//     told at once.
//   - Every connection Send makes is checked when it is dialed: the
//     net.Dialer's Control function sees the IP address actually being
//     connected to, after DNS, and refuses it. A host that resolved to a
//     public address at creation and to 127.0.0.1 later (DNS rebinding),
//     a redirect (never followed anyway) or an endpoint stored before the
//     setting changed cannot get past it. No proxy from the environment is
//     used: through a proxy the dial would reach the proxy, not the
//     endpoint, and the check would see the wrong address.
//
// Refused are loopback, private (RFC 1918, fc00::/7, the deprecated
// fec0::/10), link-local (169.254/16, fe80::/10), multicast, unspecified
// (0.0.0.0, ::), shared carrier-grade NAT (100.64/10), the reserved,
// benchmarking and documentation ranges, the IPv6 transition prefixes that
// tunnel to an IPv4 address (6to4, Teredo), and IPv4 addresses in any IPv6
// form (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, whose embedded
// address is judged instead). Config.AllowPrivate (RECOUP_WEBHOOK_ALLOW_PRIVATE)
// lifts all of that, and allows http:// URLs, for development and for
// deployments whose merchants' receivers live on a private network; the
// cloud metadata addresses stay refused even then, since no webhook
// receiver lives there and credentials do.
package outbound
