// Package email sends recoup's customer emails: it renders the three
// notify_* messages from embedded templates (plain text and HTML, sent as
// multipart/alternative) and delivers them through SMTP with
// github.com/wneessen/go-mail, or, when no SMTP server is configured, writes
// them to the log. Both implement ports.Notifier.
package email
