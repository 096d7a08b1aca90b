// Package stripetest builds what Stripe sends and serves, for tests of any
// recoup package: signed webhook events in the shapes of Stripe API version
// 2023-10-16 (the version stripe-go v76 pins), a real stripe-mock process
// to send API requests to, and a scripted Stripe API that remembers.
//
// An event is a value rendered to JSON:
//
//	payload := stripetest.Event{
//		Type:    "invoice.payment_failed",
//		Account: "acct_1",
//		Object: stripetest.Invoice{
//			ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com",
//			AmountDue: 2000, Currency: "usd", AttemptCount: 1, Status: "open",
//		},
//	}.JSON()
//	header := stripetest.Sign(payload, "whsec_test", time.Now())
//
// The object builders (Invoice, Charge, Subscription, PaymentIntent, Customer)
// render the fields recoup reads plus the usual fields around them, with
// Stripe's names and nesting, and null where Stripe sends null; their Map
// method gives the object as a map for a test that wants to change it
// (expand a field, drop one). The shapes are checked against stripe-mock's OpenAPI spec by this
// package's tests.
//
// For the Stripe API itself, StartMock(t) runs stripe-mock v0.180.0 on a
// free loopback port for the length of a test and returns its base URL (set
// it as STRIPE_API_BASE or GatewayConfig.APIBase). A missing binary fails
// the test with the command that installs it. stripe-mock checks a
// request's shape but remembers nothing and never declines; for a test
// that needs Stripe to do both, NewAPI(t) serves a scripted, stateful API
// on the requests recoup sends (see API):
//
//	api := stripetest.NewAPI(t)
//	api.PutInvoice("acct_1", stripetest.Invoice{ID: "in_1", Customer: "cus_1", AmountDue: 2000})
//	api.DeclinePays("acct_1", "in_1", "insufficient_funds") // the next pay is declined
//	gateway := recoupstripe.NewGateway(recoupstripe.GatewayConfig{APIKey: "sk_test_…", APIBase: api.URL()})
package stripetest
