package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// errStreamDown is returned for writes while the domain has no stream; the
// bus delivers the event again later.
var errStreamDown = errors.New("stream to the XMPP server is down")

// errServerClosed is the result of a stream the server ended cleanly.
var errServerClosed = errors.New("the XMPP server closed the stream")

// stream keeps one served domain connected: it dials, shakes hands, serves
// and reconnects. While connected it has a link.
type stream struct {
	c      *Component
	domain string
	jid    jid.JID
	log    *slog.Logger

	mu   sync.Mutex
	link *link
}

// link is one established session. Everything that must not outlive the
// session (pending barrier pings, the size counter) hangs off it.
type link struct {
	s       *stream
	sess    *xmpp.Session
	conn    *countingConn
	barrier *barrier
	log     *slog.Logger
}

func newStream(c *Component, domain string) *stream {
	return &stream{
		c:      c,
		domain: domain,
		jid:    jid.MustParse(domain),
		log:    c.log.With("domain", domain),
	}
}

// current is the established link, or nil while the stream is down.
func (s *stream) current() *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

func (s *stream) setLink(l *link) {
	s.mu.Lock()
	s.link = l
	s.mu.Unlock()
	up := 0.0
	if l != nil {
		up = 1
	}
	s.c.metrics.up.WithLabelValues(s.domain).Set(up)
}

// run keeps the stream up until ctx ends (nil) or the server refuses the
// domain for good (a *ConfigError).
func (s *stream) run(ctx context.Context) error {
	b := newBackoff(s.c.backoffMin, s.c.backoffMax)
	wasUp := false
	conflicts := 0
	for {
		upFor, err := s.connectAndServe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if upFor > 0 {
			wasUp = true
			conflicts = 0
		}
		if isConflict(err) {
			conflicts++
		}
		if ce := classify(s.domain, s.c.cfg.Server, err, wasUp, conflicts); ce != nil {
			s.log.Error("XMPP server refused the component", "condition", ce.Condition, "fix", ce.Fix)
			return ce
		}
		if upFor > 30*time.Second {
			b.reset()
		}
		d := b.delay()
		s.c.metrics.reconnects.WithLabelValues(s.domain).Inc()
		if upFor > 0 {
			s.log.Warn("stream lost; reconnecting", "err", err, "up_for", upFor.Round(time.Millisecond), "retry_in", d)
		} else {
			s.log.Warn("cannot connect to the XMPP server; retrying", "server", s.c.cfg.Server, "err", err, "retry_in", d)
		}
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// connectAndServe runs one session from dial to close. It returns how long
// the session was established (0 if it never was) and why it ended.
func (s *stream) connectAndServe(ctx context.Context) (time.Duration, error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", s.c.cfg.Server)
	if err != nil {
		return 0, fmt.Errorf("dial %s: %w", s.c.cfg.Server, err)
	}
	defer raw.Close()
	conn := newCountingConn(raw, 2*s.c.maxStanza+64<<10)

	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	sess, err := component.NewSession(hctx, s.jid, s.c.secret, conn)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	conn.mark()

	// The link's context outlives ctx by the drain: stanzas that arrive
	// before the server closes its side are still handled.
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	l := &link{s: s, sess: sess, conn: conn, log: s.log}
	l.barrier = newBarrier(l)
	started := time.Now()
	s.setLink(l)
	s.log.Info("stream up", "server", s.c.cfg.Server)

	serveErr := make(chan error, 1)
	go func() { serveErr <- sess.Serve(newRouter(lctx, l)) }()
	go l.keepalive(lctx)

	select {
	case err = <-serveErr:
		s.setLink(nil)
	case <-ctx.Done():
		// Drain: no new writes, then </stream:stream> and wait (briefly)
		// for the server's.
		s.setLink(nil)
		_ = raw.SetWriteDeadline(time.Now().Add(closeGrace))
		if cerr := sess.Close(); cerr != nil {
			s.log.Debug("closing stream", "err", cerr)
		}
		_ = raw.SetReadDeadline(time.Now().Add(closeGrace))
		err = <-serveErr
		s.log.Info("stream closed")
	}
	stop()
	l.barrier.fail(errStreamDown)
	upFor := time.Since(started)
	if err == nil {
		err = errServerClosed
	}
	return upFor, fmt.Errorf("stream: %w", err)
}

// send writes one stanza on the link, bounded by ctx.
func (l *link) send(ctx context.Context, kind string, m outMessage) error {
	if m.From.Domainpart() != l.s.domain || m.To.String() == "" {
		// R0114-06/07: never emit a stanza the server would refuse.
		return fmt.Errorf("refusing to send %s from %q to %q on the stream of %s", kind, m.From, m.To, l.s.domain)
	}
	if err := l.sess.Send(ctx, m.tokens()); err != nil {
		return fmt.Errorf("write %s: %w", kind, err)
	}
	l.s.c.metrics.out(kind)
	return nil
}
