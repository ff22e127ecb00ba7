// Package mail sends keepalived's e-mail alerts (smtp_alert) through a
// plain SMTP server: alerts are queued, sent by one worker and retried
// with backoff, so a slow or down mail server never blocks the caller. It
// does not decide when to alert; vrrp and checks do.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"hakeep/config"
)

// Config is global_defs' mail settings.
type Config struct {
	// To is notification_email; no recipients means no mail at all.
	To []string
	// From is notification_email_from (default keepalived@<hostname>).
	From string
	// Server is smtp_server as "host:port" (port default 25).
	Server string
	// HeloName is smtp_helo_name (default: the host name).
	HeloName string
	// Timeout is smtp_connect_timeout, bounding one delivery (default 30 s).
	Timeout time.Duration
	// QueueSize bounds waiting alerts (default 256); beyond it new alerts
	// are dropped with a log line.
	QueueSize int
	// Attempts per alert before it is dropped with a log line (default 8).
	Attempts int
	// Backoff is the first retry delay (default 1 s), doubling up to
	// MaxBackoff (default 5 min).
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
	// Now stamps the Date header (default time.Now).
	Now func() time.Time
}

// FromConfig returns the mail settings of global_defs; ok is false when
// no notification_email or smtp_server is configured.
func FromConfig(g *config.GlobalDefs) (c Config, ok bool) {
	if len(g.NotificationEmail) == 0 || g.SMTPServer == nil || g.SMTPServer.Host == "" {
		return Config{}, false
	}
	port := g.SMTPServer.Port
	if port == 0 {
		port = 25
	}
	return Config{
		To: g.NotificationEmail, From: g.NotificationEmailFrom,
		Server:   net.JoinHostPort(g.SMTPServer.Host, strconv.Itoa(int(port))),
		HeloName: g.SMTPHeloName, Timeout: g.SMTPConnectTimeout,
	}, true
}

// Message is one queued alert.
type Message struct {
	Subject, Body string
	Queued        time.Time
}

// Client queues and delivers alerts. Its zero value is not usable; use New.
type Client struct {
	cfg   Config
	log   *slog.Logger
	queue chan Message

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	sent    uint64
	dropped uint64
	closed  bool
}

// New validates cfg and starts the delivery worker.
func New(cfg Config) (*Client, error) {
	if len(cfg.To) == 0 {
		return nil, errors.New("mail: no notification_email recipients")
	}
	if cfg.Server == "" {
		return nil, errors.New("mail: no smtp_server")
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		cfg.Server = net.JoinHostPort(cfg.Server, "25")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if cfg.From == "" {
		cfg.From = "keepalived@" + host
	}
	if cfg.HeloName == "" {
		cfg.HeloName = host
	}
	for _, a := range append([]string{cfg.From}, cfg.To...) {
		if strings.ContainsAny(a, "\r\n<>") {
			return nil, fmt.Errorf("mail: bad address %q", a)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "mail"), queue: make(chan Message, cfg.QueueSize), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.worker()
	return c, nil
}

// Alert queues a mail and returns at once. subject is complete (callers
// put keepalived's "[router_id] " prefix in). When the queue is full the
// alert is dropped and logged.
func (c *Client) Alert(subject, body string) {
	m := Message{Subject: oneLine(subject), Body: body, Queued: c.cfg.Now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.dropped++
		c.log.Warn("mail alert dropped: mailer closed", "subject", m.Subject)
		return
	}
	select {
	case c.queue <- m:
	default:
		c.dropped++
		c.log.Warn("mail alert dropped: queue full", "subject", m.Subject, "queue", c.cfg.QueueSize)
	}
}

// Stats returns delivered and dropped counts.
func (c *Client) Stats() (sent, dropped uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.dropped
}

// Close stops the worker after ctx ends or the queue drains; alerts still
// queued are logged as dropped.
func (c *Client) Close(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.closed = true
	close(c.queue)
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		c.cancel()
		<-c.done
	}
}

func (c *Client) worker() {
	defer close(c.done)
	for m := range c.queue {
		c.deliver(m)
	}
}

// deliver tries one message until it is sent, attempts run out or the
// client is cancelled.
func (c *Client) deliver(m Message) {
	delay := c.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := c.send(m)
		if err == nil {
			c.mu.Lock()
			c.sent++
			c.mu.Unlock()
			c.log.Info("SMTP alert successfully sent", "subject", m.Subject, "server", c.cfg.Server, "attempt", attempt)
			return
		}
		if attempt >= c.cfg.Attempts || c.ctx.Err() != nil {
			c.mu.Lock()
			c.dropped++
			c.mu.Unlock()
			c.log.Error("mail alert dropped after failed attempts", "subject", m.Subject, "server", c.cfg.Server,
				"attempts", attempt, "err", err)
			return
		}
		c.log.Warn("mail alert not sent; retrying", "subject", m.Subject, "server", c.cfg.Server,
			"attempt", attempt, "retry_in", delay.String(), "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		delay = min(delay*2, c.cfg.MaxBackoff)
	}
}

// send is one SMTP session: HELO (EHLO first), MAIL, RCPT per recipient,
// DATA with keepalived's headers, QUIT.
func (c *Client) send(m Message) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Server)
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", c.cfg.Server, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	host, _, _ := net.SplitHostPort(c.cfg.Server)
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("SMTP greeting from %s: %w", c.cfg.Server, err)
	}
	defer cl.Close()
	if err := cl.Hello(c.cfg.HeloName); err != nil {
		return fmt.Errorf("SMTP HELO: %w", err)
	}
	if err := cl.Mail(c.cfg.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, to := range c.cfg.To {
		if err := cl.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", to, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(Format(c.cfg.From, c.cfg.To, m.Subject, m.Body, c.cfg.Now())); err != nil {
		return fmt.Errorf("SMTP message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP end of message: %w", err)
	}
	if err := cl.Quit(); err != nil {
		return fmt.Errorf("SMTP QUIT: %w", err)
	}
	return nil
}

// Format renders keepalived's message: Date, From, Subject, X-Mailer, To
// headers and the body, CRLF line endings.
func Format(from string, to []string, subject, body string, now time.Time) []byte {
	var b strings.Builder
	b.WriteString("Date: " + now.Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n")
	b.WriteString("From: " + from + "\r\n")
	b.WriteString("Subject: " + oneLine(subject) + "\r\n")
	b.WriteString("X-Mailer: Keepalived\r\n")
	b.WriteString("To: " + strings.Join(to, ", ") + "\r\n\r\n")
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	b.WriteString(body + "\r\n")
	return []byte(b.String())
}

// oneLine keeps a header from being split (header injection).
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
