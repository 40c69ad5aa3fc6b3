package component

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// nsPing is XEP-0199.
const nsPing = "urn:xmpp:ping"

func registerPing(r *router) {
	r.handleIQ("get", xml.Name{Space: nsPing, Local: "ping"}, answerPing)
}

// answerPing answers a ping to the domain or to any JID it serves with an
// empty result (XEP-0199 §4); a JID that maps to no SIP user gets
// item-not-found.
func answerPing(_ context.Context, l *link, in *inStanza, _ child) (xml.TokenReader, error) {
	if _, err := l.entity(in.To); err != nil {
		return nil, err
	}
	return nil, nil
}

// ping sends an XEP-0199 ping from the domain to `to` and waits for the
// answer. Any answer, result or error, proves that the server has
// processed everything written on this stream before the ping.
func (l *link) ping(ctx context.Context, to jid.JID) error {
	iq := stanza.IQ{ID: "p-" + randomID(), Type: stanza.GetIQ, From: l.s.jid, To: to}
	l.s.c.metrics.out("iq_get")
	resp, err := l.sess.SendIQ(ctx, iq.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsPing, Local: "ping"}})))
	if err != nil {
		return fmt.Errorf("ping %s: %w", to, err)
	}
	// The response has been read (the next stanza starts after it).
	l.conn.mark()
	kind := "iq_result"
	if tok, err := resp.Token(); err == nil {
		if start, ok := tok.(xml.StartElement); ok {
			kind = stanzaKind("iq", headerOf(start).Type)
		}
	}
	// Closing the response lets the session read on.
	_ = resp.Close()
	l.s.c.metrics.in(kind)
	return nil
}

// keepalive pings the server through the stream every ping interval: the
// ping goes to the domain itself, so the server routes it back to us and
// the round trip proves both directions work. Two pings in a row without
// an answer drop the connection, which makes the stream reconnect.
func (l *link) keepalive(ctx context.Context) {
	interval := l.s.c.pingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		start := time.Now()
		err := l.ping(pctx, l.s.jid)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			missed = 0
			l.log.Debug("keepalive", "rtt", time.Since(start))
			continue
		}
		missed++
		l.log.Warn("keepalive ping unanswered", "missed", missed, "err", err)
		if missed >= 2 {
			l.log.Error("two keepalive pings unanswered; dropping the stream", "interval", interval)
			_ = l.conn.Conn.Close()
			return
		}
	}
}
