package component

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// handleEvent writes one event from model.TopicToXMPP as a stanza.
// Returning an error leaves the event pending (the bus delivers it again);
// events that can never be delivered are acknowledged after telling the
// SIP side, so they do not come back forever.
func (c *Component) handleEvent(ctx context.Context, ev store.Event) error {
	// A delivery in flight finishes even when the consumer is stopping.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.deliveryTimeout)
	defer cancel()
	var err error
	switch ev.Type {
	case model.EventMessage:
		err = c.deliverMessage(ctx, ev)
	case model.EventMessageError:
		err = c.deliverMessageError(ctx, ev)
	default:
		c.log.Warn("ignoring bus event of unknown type", "event", ev.ID, "type", ev.Type)
		c.metrics.deliveries.WithLabelValues("other", "rejected").Inc()
		return nil
	}
	if err != nil {
		c.metrics.deliveries.WithLabelValues(ev.Type, "retry").Inc()
	}
	return err
}

// route finds the stream for a SIP user (the sender of what we write) and
// renders both JIDs. A non-nil model.Error means the event can never be
// delivered.
func (c *Component) route(sipUser, xmppUser address.Address) (*stream, jid.JID, jid.JID, *model.Error) {
	fail := func(cond, text string) (*stream, jid.JID, jid.JID, *model.Error) {
		e := model.New(cond, text)
		return nil, jid.JID{}, jid.JID{}, &e
	}
	fs, err := c.deps.Mapper.JIDOfSIPUser(sipUser)
	if err != nil {
		return fail(mapCondition(err), "sender has no XMPP address")
	}
	ts, err := c.deps.Mapper.JIDOfXMPPUser(xmppUser)
	if err != nil {
		return fail(mapCondition(err), "recipient has no XMPP address")
	}
	from, err := jid.Parse(fs)
	if err != nil {
		return fail(model.JIDMalformed, "sender has no valid XMPP address")
	}
	to, err := jid.Parse(ts)
	if err != nil {
		return fail(model.JIDMalformed, "recipient has no valid XMPP address")
	}
	s := c.streams[from.Domainpart()]
	if s == nil {
		return fail(model.ItemNotFound, "sender is not in a domain this gateway serves")
	}
	if c.streams[to.Domainpart()] != nil {
		// The server would route it back to us, and on to SIP: a loop.
		return fail(model.ItemNotFound, "recipient is a SIP user, not an XMPP user")
	}
	return s, from, to, nil
}

func mapCondition(err error) string {
	if errors.Is(err, address.ErrMalformed) {
		return model.JIDMalformed
	}
	return model.ItemNotFound
}

// deliverMessage writes a model.Message and, when it has a ReplyTo, waits
// for the delivery barrier and publishes the verdict as a model.Result.
func (c *Component) deliverMessage(ctx context.Context, ev store.Event) error {
	var m model.Message
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		c.log.Error("dropping undecodable message event", "event", ev.ID, "err", err)
		c.metrics.deliveries.WithLabelValues(ev.Type, "rejected").Inc()
		return nil
	}
	conv := m.ConvID
	if conv == "" {
		conv = model.ConversationID(m.From, m.To)
	}
	log := c.log.With("conv", conv, "id", m.ID, "event", ev.ID)

	s, from, to, perr := c.route(m.From, m.To)
	if perr != nil {
		log.Warn("message cannot be delivered", "condition", perr.Condition, "reason", perr.Text)
		c.metrics.deliveries.WithLabelValues(ev.Type, "rejected").Inc()
		return c.publishResult(ctx, log, ev, m, conv, perr)
	}
	log = log.With("domain", s.domain)
	if size := len(m.Body) + len(m.Subject) + len(m.Thread) + len(m.ID) + len(m.Lang); int64(size) > c.maxStanza-stanzaOverhead {
		// The server would close the stream over it, again on every redelivery.
		log.Warn("message too large for the XMPP server", "bytes", size, "max_stanza_bytes", c.maxStanza)
		c.metrics.deliveries.WithLabelValues(ev.Type, "rejected").Inc()
		e := model.New(model.PolicyViolation, "message too large")
		return c.publishResult(ctx, log, ev, m, conv, &e)
	}
	l := s.current()
	if l == nil {
		return fmt.Errorf("message %s for %s: %w", m.ID, s.domain, errStreamDown)
	}
	out := outMessage{
		ID: m.ID, Type: string(model.Chat), Lang: m.Lang, From: from, To: to,
		Body: m.Body, Subject: m.Subject, Thread: m.Thread, includeEmptyBody: true,
	}
	if m.Type == model.Normal {
		out.Type = string(model.Normal)
	}
	if out.ID == "" {
		out.ID = "parley-" + randomID()
	}

	if m.ReplyTo == "" {
		if err := l.send(ctx, "message_"+out.Type, out); err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		c.metrics.deliveries.WithLabelValues(ev.Type, "ok").Inc()
		log.Debug("message to XMPP", "type", out.Type)
		return nil
	}

	d, err := l.barrier.expect(bounceKey(out.ID, from.String()), to.Domain())
	if err != nil {
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	if err := l.send(ctx, "message_"+out.Type, out); err != nil {
		l.barrier.forget(d)
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	l.barrier.written(d)
	bounce, err := l.barrier.wait(ctx, d)
	if err != nil {
		// Written, but no verdict: deliver again rather than risk a loss.
		log.Warn("no delivery verdict; the message will be delivered again", "err", err)
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	if bounce != nil {
		c.metrics.deliveries.WithLabelValues(ev.Type, "bounced").Inc()
		log.Info("message bounced by the XMPP server", "condition", bounce.Condition, "sip_status", bounce.SIPStatus)
	} else {
		c.metrics.deliveries.WithLabelValues(ev.Type, "ok").Inc()
		log.Debug("message to XMPP accepted", "type", out.Type)
	}
	return c.publishResult(ctx, log, ev, m, conv, bounce)
}

// publishResult tells the SIP side (msg.ReplyTo) what became of m. A
// failure is logged, not retried: the message itself was handled, and the
// SIP side answers on its own when no verdict comes in time.
func (c *Component) publishResult(ctx context.Context, log *slog.Logger, ev store.Event, m model.Message, conv string, verdict *model.Error) error {
	if m.ReplyTo == "" {
		return nil
	}
	data, err := json.Marshal(model.Result{ID: m.ID, EventID: ev.ID, Err: verdict})
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	res := store.Event{ID: "r:" + ev.ID, Key: conv, Type: model.EventResult, Data: data}
	if err := c.deps.Bus.Publish(ctx, m.ReplyTo, res); err != nil {
		c.metrics.publishFailures.WithLabelValues(model.EventResult).Inc()
		log.Error("cannot publish delivery result", "topic", m.ReplyTo, "err", err)
	}
	return nil
}

// deliverMessageError tells an XMPP sender that the SIP side refused their
// message: <message type="error"> echoing its id (R7247-09, ERR-02).
func (c *Component) deliverMessageError(ctx context.Context, ev store.Event) error {
	var me model.MessageError
	if err := json.Unmarshal(ev.Data, &me); err != nil {
		c.log.Error("dropping undecodable message-error event", "event", ev.ID, "err", err)
		c.metrics.deliveries.WithLabelValues(ev.Type, "rejected").Inc()
		return nil
	}
	conv := me.ConvID
	if conv == "" {
		conv = model.ConversationID(me.From, me.To)
	}
	log := c.log.With("conv", conv, "id", me.ID, "event", ev.ID)
	s, from, to, perr := c.route(me.From, me.To)
	if perr != nil {
		log.Warn("message error cannot be delivered", "condition", perr.Condition, "reason", perr.Text)
		c.metrics.deliveries.WithLabelValues(ev.Type, "rejected").Inc()
		return nil
	}
	l := s.current()
	if l == nil {
		return fmt.Errorf("message error %s for %s: %w", me.ID, s.domain, errStreamDown)
	}
	e := me.Err
	out := outMessage{ID: me.ID, Type: "error", From: from, To: to, Err: &e}
	if err := l.send(ctx, "message_error", out); err != nil {
		return fmt.Errorf("message error %s: %w", me.ID, err)
	}
	c.metrics.deliveries.WithLabelValues(ev.Type, "ok").Inc()
	log.Info("message refused by SIP reported to the sender", "condition", e.Condition, "sip_status", e.SIPStatus)
	return nil
}

// handleBounce takes a <message type="error"> from the server: the verdict
// on a message waiting at the barrier, or a late bounce that is logged and
// counted.
func (l *link) handleBounce(in *inStanza) {
	e := fromStanzaError(in.Error)
	if l.barrier.bounce(bounceKey(in.ID, in.To), e) {
		l.s.c.metrics.bounces.WithLabelValues("barrier").Inc()
		return
	}
	l.s.c.metrics.bounces.WithLabelValues("late").Inc()
	conv := ""
	mapper := l.s.c.deps.Mapper
	if a, err := mapper.ParseJID(in.From); err == nil {
		if b, err := mapper.ParseJID(in.To); err == nil {
			conv = model.ConversationID(a, b)
		}
	}
	l.log.Warn("message bounced with no delivery waiting for it", "conv", conv, "id", in.ID,
		"from", in.From, "to", in.To, "condition", e.Condition)
}
