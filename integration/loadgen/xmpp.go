package loadgen

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// XMPPConfig describes a c2s login.
type XMPPConfig struct {
	Addr     string // c2s address, IP literal and port
	Domain   string // e.g. "xmpp.test"
	User     string
	Password string
	Resource string // default "loadgen"
	Recorder *Recorder
	Log      *slog.Logger
}

// XMPPClient is a c2s client: SASL PLAIN without TLS (the harness's
// Prosody allows it on loopback), resource binding, initial presence. Its
// reader hands every received message body to the Recorder; message
// errors are recorded as failures of the message whose id they carry.
type XMPPClient struct {
	s   *stream
	jid string
	rec *Recorder
	log *slog.Logger

	wmu sync.Mutex

	done    chan struct{}
	readErr error

	featuresSeen *node // last stream features (login only)

	messages atomic.Int64
	errors   atomic.Int64
}

// DialXMPP connects and logs in; it returns once the initial presence is
// sent and the reader runs.
func DialXMPP(ctx context.Context, cfg XMPPConfig) (*XMPPClient, error) {
	if cfg.Resource == "" {
		cfg.Resource = "loadgen"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		return nil, errors.New("xmpp client: no recorder")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("xmpp client: %w", err)
	}
	c := &XMPPClient{s: newStream(conn), rec: cfg.Recorder, log: cfg.Log, done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if err := c.login(cfg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("xmpp client %s@%s: %w", cfg.User, cfg.Domain, err)
	}
	conn.SetDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

func (c *XMPPClient) openStream(domain string) error {
	c.s.bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "' version='1.0' to='")
	writeEscaped(c.s.bw, domain)
	c.s.bw.WriteString("'>")
	if err := c.s.bw.Flush(); err != nil {
		return err
	}
	if _, header, err := c.s.readTop(); err != nil {
		return fmt.Errorf("stream header: %w", err)
	} else if !header {
		return errors.New("expected a stream header")
	}
	feats, _, err := c.s.readTop()
	if err != nil {
		return fmt.Errorf("stream features: %w", err)
	}
	if feats.local != "features" {
		return fmt.Errorf("expected stream features, got <%s>", feats.local)
	}
	c.featuresSeen = feats
	return nil
}

func (c *XMPPClient) login(cfg XMPPConfig) error {
	if err := c.openStream(cfg.Domain); err != nil {
		return err
	}
	mechs := c.featuresSeen.child("mechanisms")
	plain := false
	if mechs != nil {
		for _, m := range mechs.kids {
			if string(m.text) == "PLAIN" {
				plain = true
			}
		}
	}
	if !plain {
		return errors.New("server does not offer SASL PLAIN (allow_unencrypted_plain_auth?)")
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + cfg.User + "\x00" + cfg.Password))
	c.s.bw.WriteString("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + cred + "</auth>")
	if err := c.s.bw.Flush(); err != nil {
		return err
	}
	n, _, err := c.s.readTop()
	if err != nil {
		return fmt.Errorf("sasl: %w", err)
	}
	if n.local != "success" {
		return fmt.Errorf("sasl: <%s> %s", n.local, firstKid(n))
	}
	if err := c.openStream(cfg.Domain); err != nil {
		return err
	}
	if c.featuresSeen.child("bind") == nil {
		return errors.New("no resource binding offered")
	}
	c.s.bw.WriteString("<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'><resource>")
	writeEscaped(c.s.bw, cfg.Resource)
	c.s.bw.WriteString("</resource></bind></iq>")
	if err := c.s.bw.Flush(); err != nil {
		return err
	}
	for {
		n, _, err := c.s.readTop()
		if err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if n.local != "iq" || n.attr("id") != "bind1" {
			continue
		}
		if n.attr("type") != "result" {
			return fmt.Errorf("bind: %s", stanzaErrorCondition(n))
		}
		if b := n.child("bind"); b != nil {
			if j := b.child("jid"); j != nil {
				c.jid = string(j.text)
			}
		}
		break
	}
	if c.jid == "" {
		return errors.New("bind: no JID in result")
	}
	c.s.bw.WriteString("<presence/>")
	return c.s.bw.Flush()
}

func firstKid(n *node) string {
	if len(n.kids) > 0 {
		return n.kids[0].local
	}
	return ""
}

// JID is the bound full JID.
func (c *XMPPClient) JID() string { return c.jid }

// Messages counts message stanzas received (any type); Errors counts those
// of type error.
func (c *XMPPClient) Messages() int64 { return c.messages.Load() }

// Errors counts received messages of type error.
func (c *XMPPClient) Errors() int64 { return c.errors.Load() }

// Done is closed when the reader ended (stream closed or failed).
func (c *XMPPClient) Done() <-chan struct{} { return c.done }

// Err is why the reader ended (after Done).
func (c *XMPPClient) Err() error { return c.readErr }

func (c *XMPPClient) readLoop() {
	defer close(c.done)
	for {
		n, _, err := c.s.readTop()
		if err != nil {
			c.readErr = err
			return
		}
		if n.local != "message" {
			continue
		}
		c.messages.Add(1)
		if n.attr("type") == "error" {
			c.errors.Add(1)
			if tag, seq, ok := ParseID(n.attr("id")); ok {
				c.rec.Fail(tag, seq, "xmpp "+stanzaErrorCondition(n))
			} else {
				c.log.Warn("message error without a loadgen id", "from", n.attr("from"), "condition", stanzaErrorCondition(n))
			}
			continue
		}
		if b := n.child("body"); b != nil {
			c.rec.Deliver(b.text)
		}
	}
}

// Close ends the stream and the connection.
func (c *XMPPClient) Close() error {
	c.wmu.Lock()
	c.s.bw.WriteString("</stream:stream>")
	c.s.bw.Flush()
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	return c.s.conn.Close()
}

// To returns a Sender of chat messages from this client. Message seq goes
// to jids[seq % len(jids)]: several recipients make several
// conversations.
func (c *XMPPClient) To(jids ...string) Sender {
	heads := make([][]byte, len(jids))
	for i, j := range jids {
		var b []byte
		b = append(b, "<message type='chat' to='"...)
		b = append(b, escaper.Replace(j)...)
		b = append(b, "' id='"...)
		heads[i] = b
	}
	return &xmppSender{c: c, heads: heads}
}

type xmppSender struct {
	c     *XMPPClient
	heads [][]byte
	buf   []byte
}

// Send buffers one message; the body is ASCII made by AppendBody, so it
// needs no escaping.
func (x *xmppSender) Send(tag uint32, seq uint64, body []byte) error {
	if len(x.heads) == 0 {
		return errors.New("no recipient")
	}
	b := append(x.buf[:0], x.heads[seq%uint64(len(x.heads))]...)
	b = AppendID(b, tag, seq)
	b = append(b, "'><body>"...)
	b = append(b, body...)
	b = append(b, "</body></message>"...)
	x.buf = b
	x.c.wmu.Lock()
	_, err := x.c.s.bw.Write(b)
	x.c.wmu.Unlock()
	return err
}

func (x *xmppSender) Flush() error {
	x.c.wmu.Lock()
	defer x.c.wmu.Unlock()
	return x.c.s.bw.Flush()
}
