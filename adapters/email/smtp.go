package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// TLSMode is how the SMTP connection is encrypted.
type TLSMode string

// The TLS modes.
const (
	// TLSImplicit: TLS from the first byte (smtps://, usually port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSOpportunistic: STARTTLS when the server offers it, plain otherwise
	// (smtp://, the default). Passwords are still never sent in the clear to
	// a server other than loopback: go-mail refuses PLAIN and LOGIN then.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSRequired: STARTTLS, and fail if the server does not offer it
	// (smtp://…?starttls=required).
	TLSRequired TLSMode = "required"
	// TLSNone: never encrypt (smtp://…?starttls=none), for a local relay.
	TLSNone TLSMode = "none"
)

// SMTPConfig says where and how to send email.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string // empty: no authentication
	Password string
	TLS      TLSMode
	// From is the sender address; the merchant's name is its display name.
	From string
	// Timeout bounds connecting and each SMTP command. Default 30 s.
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (tests trust their own CA with
	// it); nil verifies the server's certificate against the system roots.
	TLSConfig *tls.Config
}

// Default SMTP ports by scheme.
const (
	defaultSubmissionPort = 587
	defaultSMTPSPort      = 465
	defaultTimeout        = 30 * time.Second
)

// ParseSMTPURL reads an SMTP URL: smtp://user:pass@host:port (STARTTLS
// when offered; ?starttls=required or ?starttls=none to change that) or
// smtps://user:pass@host:port (implicit TLS). Ports default to 587 and 465.
// From is left empty for the caller to set. Errors never repeat the URL,
// which may hold a password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return SMTPConfig{}, &URLError{"it is not a URL"}
	}
	var cfg SMTPConfig
	switch u.Scheme {
	case "smtp":
		cfg.TLS, cfg.Port = TLSOpportunistic, defaultSubmissionPort
		switch mode := u.Query().Get("starttls"); mode {
		case "", "opportunistic":
		case "required":
			cfg.TLS = TLSRequired
		case "none":
			cfg.TLS = TLSNone
		default:
			return SMTPConfig{}, &URLError{"starttls must be opportunistic, required or none"}
		}
	case "smtps":
		cfg.TLS, cfg.Port = TLSImplicit, defaultSMTPSPort
	default:
		return SMTPConfig{}, &URLError{"it must start with smtp:// or smtps://"}
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return SMTPConfig{}, &URLError{"it has no host"}
	}
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return SMTPConfig{}, &URLError{"its port must be a number from 1 to 65535"}
		}
		cfg.Port = port
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	return cfg, nil
}

// URLError is why ParseSMTPURL refused a URL. It wraps domain.ErrInvalid;
// its Reason never repeats the URL, which may hold a password.
type URLError struct {
	Reason string
}

// Error reads "invalid SMTP URL: <reason>".
func (e *URLError) Error() string { return "invalid SMTP URL: " + e.Reason }

// Unwrap makes a URLError a domain.ErrInvalid.
func (e *URLError) Unwrap() error { return domain.ErrInvalid }

// SMTPNotifier sends customer emails through an SMTP server, one connection
// per email.
type SMTPNotifier struct {
	cfg    SMTPConfig
	from   *netmail.Address
	domain string // of the sender, for Message-IDs
	render *Renderer
	log    *slog.Logger
}

var _ ports.Notifier = (*SMTPNotifier)(nil)

// NewSMTPNotifier checks cfg and returns a notifier. It does not connect:
// an unreachable server shows in the tasks' last_error and is retried. A nil
// logger discards.
func NewSMTPNotifier(cfg SMTPConfig, log *slog.Logger) (*SMTPNotifier, error) {
	if cfg.Host == "" || cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("%w: SMTP host and port are required", domain.ErrInvalid)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSOpportunistic
	case TLSImplicit, TLSOpportunistic, TLSRequired, TLSNone:
	default:
		return nil, fmt.Errorf("%w: unknown SMTP TLS mode %q", domain.ErrInvalid, cfg.TLS)
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("%w: sender %q is not an email address", domain.ErrInvalid, cfg.From)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, dom, _ := strings.Cut(from.Address, "@")
	return &SMTPNotifier{cfg: cfg, from: from, domain: dom, render: mustRenderer(), log: log}, nil
}

// Notify renders n and sends it as multipart/alternative (text and HTML).
// Its Message-ID is derived from n.IdempotencyKey, so a resend of the same
// task attempt is recognisably the same message. ErrInvalid when the
// recipient is missing or malformed or the server refuses it for good.
func (s *SMTPNotifier) Notify(ctx context.Context, n domain.Notification) error {
	if n.To == "" {
		return fmt.Errorf("%w: notification has no recipient", domain.ErrInvalid)
	}
	rendered, err := s.render.Render(n)
	if err != nil {
		return err
	}
	msg, err := s.message(n, rendered)
	if err != nil {
		return err
	}
	client, err := mail.NewClient(s.cfg.Host, s.options(ctx)...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var se *mail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.Reason == mail.ErrSMTPRcptTo {
			return fmt.Errorf("%w: smtp server refused recipient: %w", domain.ErrInvalid, err)
		}
		return fmt.Errorf("smtp send to %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "email sent",
		slog.String("to", domain.MaskEmail(rendered.To)), slog.String("subject", rendered.Subject),
		slog.String("task_id", string(n.TaskID)), slog.String("message_id", msg.GetMessageID()))
	return nil
}

// MessageID is the Message-ID (without angle brackets) of the email of the
// task attempt with this idempotency key, sent from an address at
// senderDomain.
func MessageID(idempotencyKey, senderDomain string) string {
	if senderDomain == "" {
		senderDomain = "recoup.invalid"
	}
	return idempotencyKey + "@" + senderDomain
}

func (s *SMTPNotifier) message(n domain.Notification, r Message) (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.FromFormat(oneLine(n.MerchantName), s.from.Address); err != nil {
		return nil, fmt.Errorf("%w: sender: %w", domain.ErrInvalid, err)
	}
	if err := msg.To(r.To); err != nil {
		return nil, fmt.Errorf("%w: recipient %s: %w", domain.ErrInvalid, domain.MaskEmail(r.To), err)
	}
	msg.Subject(r.Subject)
	msg.SetDate()
	key := n.IdempotencyKey
	if key == "" {
		key = domain.AttemptKey(n.TaskID, n.Attempt)
	}
	msg.SetMessageIDWithValue(MessageID(key, s.domain))
	// Keep out-of-office and similar robots from answering.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(mail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	return msg, nil
}

func (s *SMTPNotifier) options(ctx context.Context) []mail.Option {
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), time.Millisecond))
	}
	tlsConfig := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	if s.cfg.TLSConfig != nil {
		tlsConfig = s.cfg.TLSConfig.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = s.cfg.Host
		}
	}
	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(timeout), mail.WithTLSConfig(tlsConfig)}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSRequired:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if s.cfg.Username != "" {
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	return opts
}
