// Package stripe connects recoup to Stripe with stripe-go v76 (Stripe API
// version 2023-10-16): the Verifier checks and decodes webhook deliveries
// (ports.WebhookVerifier), the Gateway reads and pays invoices on merchants'
// connected accounts (ports.PaymentGateway).
//
// Nothing here touches stripe-go's package-level state (stripe.Key, the
// global backends): every Gateway carries its own key and backend, so two
// of them, or a test's, never interfere.
package stripe
