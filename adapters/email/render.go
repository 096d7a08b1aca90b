package email

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/recoupdev/recoup/domain"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// Message is a rendered customer email.
type Message struct {
	To      string
	Subject string
	Text    string // text/plain part
	HTML    string // text/html part, the alternative to Text
}

// Renderer turns notifications into messages from the embedded templates.
// It is safe for concurrent use.
type Renderer struct {
	byType map[domain.TaskType]templatePair
}

type templatePair struct {
	text *texttemplate.Template // defines "subject" and "text"
	html *htmltemplate.Template // "layout" around the type's "content"
}

// templateStems names each notify_* type's template files.
func templateStems() map[domain.TaskType]string {
	return map[domain.TaskType]string{
		domain.TypeNotifyPaymentFailed:  "payment_failed",
		domain.TypeNotifyActionRequired: "action_required",
		domain.TypeNotifyChargeFailed:   "charge_failed",
		domain.TypeNotifyReminder:       "reminder",
		domain.TypeNotifyCardExpiring:   "card_expiring",
	}
}

// NewRenderer parses the embedded templates.
func NewRenderer() (*Renderer, error) {
	stems := templateStems()
	r := &Renderer{byType: make(map[domain.TaskType]templatePair, len(stems))}
	for typ, stem := range stems {
		text, err := texttemplate.New(stem).ParseFS(templateFS, "templates/"+stem+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("email template %s: %w", stem, err)
		}
		html, err := htmltemplate.New(stem).ParseFS(templateFS, "templates/layout.html.tmpl", "templates/"+stem+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("email template %s: %w", stem, err)
		}
		r.byType[typ] = templatePair{text: text, html: html}
	}
	return r, nil
}

// mustRenderer is for constructors that cannot fail otherwise: the
// templates are embedded and parsed by every test, so a parse error is a
// build mistake, not a runtime condition.
func mustRenderer() *Renderer {
	r, err := NewRenderer()
	if err != nil {
		panic(err)
	}
	return r
}

// view is what the templates see.
type view struct {
	Subject  string
	Merchant string
	Amount   string
	// Link is the email's one call to action: the update link when there
	// is one, else the hosted invoice.
	Link      string
	InvoiceID string
	ChargeID  string
	NewCard   bool   // the card was declined for good
	Card      string // "Visa card ending in 4242", for card_expiring
	Expiry    string // "08/2027"
}

// Render renders n. ErrInvalid if its type sends no email.
func (r *Renderer) Render(n domain.Notification) (Message, error) {
	tp, ok := r.byType[n.Type]
	if !ok {
		return Message{}, fmt.Errorf("%w: no email for task type %q", domain.ErrInvalid, n.Type)
	}
	v := view{
		Merchant:  oneLine(n.MerchantName),
		Amount:    domain.FormatAmount(n.Amount, n.Currency),
		Link:      n.UpdateURL,
		InvoiceID: n.InvoiceID,
		ChargeID:  n.ChargeID,
		NewCard:   n.NewCardNeeded,
		Card:      cardName(n.CardBrand, n.CardLast4),
	}
	if v.Link == "" {
		v.Link = n.HostedInvoiceURL
	}
	if n.CardExpMonth >= 1 && n.CardExpMonth <= 12 {
		v.Expiry = fmt.Sprintf("%02d/%d", n.CardExpMonth, n.CardExpYear)
	}
	var subject, text, html bytes.Buffer
	if err := tp.text.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", n.Type, err)
	}
	v.Subject = oneLine(subject.String())
	if err := tp.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", n.Type, err)
	}
	if err := tp.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", n.Type, err)
	}
	return Message{To: n.To, Subject: v.Subject, Text: text.String(), HTML: html.String()}, nil
}

// cardName is how an email names a card: "Visa card ending in 4242", or
// just "card" when nothing is known of it.
func cardName(brand, last4 string) string {
	name := "card"
	if b := oneLine(brand); b != "" && b != "unknown" {
		name = strings.ToUpper(b[:1]) + b[1:] + " card"
	}
	if l := oneLine(last4); l != "" {
		name += " ending in " + l
	}
	return name
}

// oneLine keeps a value that ends up in a header on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
