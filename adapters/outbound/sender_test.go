package outbound_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/domain"
)

// received is one request a test receiver got.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is an endpoint on 127.0.0.1 that records what reaches it and
// answers with answer.
func receiver(t *testing.T, answer http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{method: r.Method, header: r.Header.Clone(), body: body}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// delivery is a claimed delivery to url, as the delivery worker hands it
// to Send, with the endpoint that it goes to.
func delivery(t *testing.T, url string) (domain.Delivery, domain.WebhookEndpoint) {
	t.Helper()
	e, err := domain.NewWebhookEndpoint(domain.MerchantID(domain.NewID()), url, []string{"*"}, time.Now())
	if err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	payload, err := domain.OutboundPayload(domain.OutboundTaskSucceeded, time.Now(), map[string]string{"task_id": domain.NewID()})
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	return domain.Delivery{
		ID: domain.NewDeliveryID(), MerchantID: e.MerchantID, EndpointID: e.ID, EventType: domain.OutboundTaskSucceeded,
		Payload: payload, Status: domain.DeliveryPending, Attempts: 1, URL: e.URL, Secret: e.Secret,
	}, e
}

// noRequest fails the test if the receiver got anything.
func noRequest(t *testing.T, got <-chan received) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("the receiver got a %s request; it should have got nothing", r.method)
	default:
	}
}

func TestSendSignsPerStandardWebhooks(t *testing.T) {
	is := is.New(t)
	srv, got := receiver(t, status(http.StatusNoContent))
	d, endpoint := delivery(t, srv.URL+"/hooks/recoup")
	at := time.Now()

	code, err := outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, at)
	is.NoErr(err)
	is.Equal(code, http.StatusNoContent)

	r := <-got
	is.Equal(r.method, http.MethodPost)
	is.Equal(string(r.body), string(d.Payload))
	is.Equal(r.header.Get("Content-Type"), "application/json")
	is.True(strings.Contains(r.header.Get("User-Agent"), "recoup")) // the User-Agent names recoup
	is.Equal(r.header.Get("webhook-id"), string(d.ID))
	is.Equal(r.header.Get("webhook-timestamp"), strconv.FormatInt(at.Unix(), 10))
	is.True(strings.HasPrefix(r.header.Get("webhook-signature"), "v1,"))

	// The merchant verifies with the secret as it was shown to them.
	wh, err := standardwebhooks.NewWebhook(endpoint.EncodedSecret())
	is.NoErr(err)
	is.NoErr(wh.Verify(r.body, r.header)) // the library accepts the signature

	other, _ := delivery(t, srv.URL)
	wrong, err := standardwebhooks.NewWebhookRaw(other.Secret)
	is.NoErr(err)
	is.True(wrong.Verify(r.body, r.header) != nil) // and another endpoint's secret does not
}

// TestSendSignatureKnownVector checks the signature against the Standard
// Webhooks libraries' published example and against the spec's formula
// computed here by hand: base64(HMAC-SHA256(key, id + "." + timestamp +
// "." + body)).
func TestSendSignatureKnownVector(t *testing.T) {
	is := is.New(t)
	const (
		secret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		timestamp = 1614265330
		payload   = `{"test": 2432232314}`
		published = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	is.NoErr(err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.Itoa(timestamp) + "." + payload))
	byHand := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	is.Equal(byHand, published) // the formula gives the published example

	srv, got := receiver(t, status(http.StatusOK))
	d := domain.Delivery{ID: id, URL: srv.URL, Secret: key, Payload: []byte(payload)}
	_, err = outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, time.Unix(timestamp, 0))
	is.NoErr(err)
	r := <-got
	is.Equal(r.header.Get("webhook-signature"), published)
	is.Equal(r.header.Get("webhook-timestamp"), "1614265330")
}

func TestSendStatuses(t *testing.T) {
	sender := outbound.New(outbound.Config{AllowPrivate: true})
	for _, code := range []int{200, 201, 202, 204, 299} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			is := is.New(t)
			srv, _ := receiver(t, status(code))
			d, _ := delivery(t, srv.URL)
			got, err := sender.Send(context.Background(), d, time.Now())
			is.NoErr(err) // a 2xx is delivered
			is.Equal(got, code)
		})
	}
	const bodyText = "stack trace with customer@example.com"
	for _, code := range []int{400, 401, 404, 410, 429, 500, 503, 599} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			is := is.New(t)
			srv, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(code)
				io.WriteString(w, bodyText)
			})
			d, _ := delivery(t, srv.URL)
			got, err := sender.Send(context.Background(), d, time.Now())
			is.Equal(got, code)
			is.True(err != nil)                                             // anything but a 2xx is an error
			is.True(strings.Contains(err.Error(), strconv.Itoa(code)))      // that says the status
			is.True(!strings.Contains(err.Error(), "customer@example.com")) // and nothing of the body
		})
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			is := is.New(t)
			target, reached := receiver(t, status(http.StatusOK))
			srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", code)
			})
			d, _ := delivery(t, srv.URL)
			got, err := outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, time.Now())
			is.Equal(got, code)                                        // the redirect is the answer
			is.True(err != nil)                                        // and a failed attempt
			is.True(strings.Contains(err.Error(), strconv.Itoa(code))) // that says its status
			noRequest(t, reached)
		})
	}
}

func TestSendTimesOut(t *testing.T) {
	is := is.New(t)
	release := make(chan struct{})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release) // before the server's Close, which waits for the handler
	d, _ := delivery(t, srv.URL)
	start := time.Now()
	got, err := outbound.New(outbound.Config{AllowPrivate: true, Timeout: 200 * time.Millisecond}).Send(context.Background(), d, time.Now())
	is.Equal(got, 0)                                  // no answer came
	is.True(err != nil)                               // so the attempt failed
	is.True(time.Since(start) < 5*time.Second)        // when the timeout ran out
	is.True(strings.Contains(err.Error(), "in time")) // and says so
}

func TestSendConnectionFailureKeepsTheURLOut(t *testing.T) {
	is := is.New(t)
	srv, _ := receiver(t, status(http.StatusOK))
	d, _ := delivery(t, srv.URL+"/hook?token=merchant-s3cret")
	srv.Close() // nothing listens there any more

	got, err := outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, time.Now())
	is.Equal(got, 0)
	is.True(err != nil)
	is.True(!strings.Contains(err.Error(), "merchant-s3cret")) // last_error and the logs do not get the URL's token
}

// TestSendRefusesPrivateAddressesAtDial sends straight to a server on
// loopback, as a delivery stored before the setting changed or a host
// that resolves elsewhere since CheckURL (DNS rebinding) would: Send does
// not consult CheckURL, so only the dial guard stands in the way.
func TestSendRefusesPrivateAddressesAtDial(t *testing.T) {
	srv, got := receiver(t, status(http.StatusOK))
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	for _, url := range []string{
		srv.URL,
		"http://localhost:" + port,
		"http://[::ffff:127.0.0.1]:" + port,
	} {
		t.Run(url, func(t *testing.T) {
			is := is.New(t)
			d, _ := delivery(t, url)
			code, err := outbound.New(outbound.Config{}).Send(context.Background(), d, time.Now())
			is.Equal(code, 0)
			is.True(errors.Is(err, outbound.ErrAddressRefused)) // the guard refused the dial
			is.True(strings.Contains(err.Error(), "loopback"))  // and says why
			is.True(strings.Contains(err.Error(), "127.0.0.1")) // naming the address
			noRequest(t, got)
		})
	}

	t.Run("allowed", func(t *testing.T) {
		is := is.New(t)
		d, _ := delivery(t, srv.URL)
		code, err := outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, time.Now())
		is.NoErr(err)
		is.Equal(code, http.StatusOK)
		r := <-got
		is.Equal(string(r.body), string(d.Payload)) // with AllowPrivate the same server gets it
	})
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	strict := outbound.New(outbound.Config{})
	lax := outbound.New(outbound.Config{AllowPrivate: true})
	for _, c := range []struct {
		sender  *outbound.Sender
		url     string
		message string // "" when allowed
	}{
		{strict, "https://93.184.215.14/hooks", ""},
		{strict, "https://[2606:4700:4700::1111]:8443/hooks", ""},
		{strict, "https://localhost/hooks", "url's host resolves to a loopback address ("},
		{strict, "https://127.0.0.1/hooks", "url's host is a loopback address"},
		{strict, "https://10.0.0.1/hooks", "url's host is a private address"},
		{strict, "https://192.168.1.20/hooks", "private"},
		{strict, "https://[fd12:3456::1]/hooks", "private"},
		{strict, "https://169.254.169.254/latest/meta-data/", "url's host is the cloud metadata address"},
		{strict, "https://169.254.1.1/", "link-local"},
		{strict, "https://[fe80::1%25eth0]/", "link-local"},
		{strict, "https://[::1]/hooks", "url's host is a loopback address"},
		{strict, "https://[::ffff:10.0.0.1]/hooks", "private"},
		{strict, "https://0.0.0.0/hooks", "url's host is an unspecified address"},
		{strict, "https://[::]/hooks", "unspecified"},
		{strict, "https://100.64.0.1/hooks", "carrier-grade NAT"},
		{strict, "https://239.1.2.3/hooks", "multicast"},
		{strict, "http://93.184.215.14/hooks", "url must be https"},
		{strict, "ftp://93.184.215.14/hooks", "url must be https"},
		{strict, "https:///hooks", "url has no host"},
		{strict, "https://%zz/", "url is not a valid URL"},

		{lax, "http://localhost:8080/hooks", ""},
		{lax, "https://10.0.0.1/hooks", ""},
		{lax, "http://[::1]:9000/", ""},
		{lax, "https://169.254.169.254/latest/meta-data/", "the cloud metadata address"},
		{lax, "https://[::ffff:169.254.169.254]/", "the cloud metadata address"},
		{lax, "ftp://localhost/", "url must be https or http"},
	} {
		name := c.url
		if c.sender == lax {
			name = "allow private " + name
		}
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			err := c.sender.CheckURL(ctx, c.url)
			if c.message == "" {
				is.NoErr(err)
				return
			}
			is.True(errors.Is(err, domain.ErrInvalid)) // a refusal is bad input
			if !strings.Contains(err.Error(), c.message) {
				t.Fatalf("error %q does not say %q", err, c.message)
			}
		})
	}
}

// TestCheckURLUnresolvable: a host with no address is refused; a lookup
// that could not be made (no DNS server answers) is ErrUnavailable, not a
// refusal.
func TestCheckURLUnresolvable(t *testing.T) {
	cases := []struct {
		name   string
		answer error
		want   error
		says   string
	}{
		{"no such host", &net.DNSError{Err: "no such host", Name: "no-such-host.example", IsNotFound: true},
			domain.ErrInvalid, `url's host "no-such-host.example" does not resolve`},
		{"no DNS server", &net.DNSError{Err: "i/o timeout", Name: "no-such-host.example", IsTimeout: true},
			domain.ErrUnavailable, "resolve the url's host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			s := outbound.WithLookup(outbound.New(outbound.Config{}), func(context.Context, string, string) ([]netip.Addr, error) {
				return nil, c.answer
			})
			err := s.CheckURL(context.Background(), "https://no-such-host.example/hooks")
			is.True(errors.Is(err, c.want))                // the kind of failure
			is.True(strings.Contains(err.Error(), c.says)) // says what
		})
	}
}
