package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"runtime/debug"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/parleygw/parley/shared/model"
)

// iqHandler answers an IQ get or set. It returns the payload of the result
// (nil for an empty result) or an error: a model.Error becomes that stanza
// error, anything else internal-server-error.
type iqHandler func(ctx context.Context, l *link, in *inStanza, payload child) (xml.TokenReader, error)

type iqRoute struct {
	typ   string
	space string
	local string
}

// router is the session's stanza handler: it decodes each stanza, passes
// it to the feature that handles it and turns every failure into a stanza
// error for the sender. It never ends the session over a stanza: the only
// errors it returns are failures to write to the stream.
type router struct {
	ctx context.Context
	l   *link
	iq  map[iqRoute]iqHandler
}

func newRouter(ctx context.Context, l *link) *router {
	r := &router{ctx: ctx, l: l, iq: map[iqRoute]iqHandler{}}
	registerDisco(r)
	registerPing(r)
	return r
}

// handleIQ registers h for IQs of type typ whose payload is payload.
func (r *router) handleIQ(typ string, payload xml.Name, h iqHandler) {
	r.iq[iqRoute{typ: typ, space: payload.Space, local: payload.Local}] = h
}

// HandleXMPP implements xmpp.Handler.
func (r *router) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) (err error) {
	l := r.l
	begin := l.conn.count()
	l.conn.mark()
	if !isStanzaNS(start.Name) || (start.Name.Local != "iq" && start.Name.Local != "message" && start.Name.Local != "presence") {
		l.s.c.metrics.in("other")
		l.log.Debug("ignoring non-stanza element", "name", start.Name.Local, "ns", start.Name.Space)
		return nil
	}
	in := headerOf(*start)
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("stanza handler panicked", "kind", in.kind(), "id", in.ID, "panic", p, "stack", string(debug.Stack()))
			err = r.replyError(t, in, fmt.Errorf("panic: %v", p))
		}
	}()
	dec, derr := decodeStanza(&limitedReader{r: t, conn: l.conn, start: begin, max: l.s.c.maxStanza}, *start)
	l.s.c.metrics.in(in.kind())
	if derr != nil {
		r.normalize(in)
		if errors.Is(derr, errTooLarge) {
			l.s.c.metrics.oversize.Inc()
			l.log.Warn("stanza too large", "kind", in.kind(), "id", in.ID, "from", in.From, "max_bytes", l.s.c.maxStanza)
			return r.replyError(t, in, model.New(model.PolicyViolation,
				fmt.Sprintf("stanza larger than %d bytes", l.s.c.maxStanza)))
		}
		l.log.Warn("malformed stanza", "kind", in.kind(), "id", in.ID, "from", in.From, "err", derr)
		return r.replyError(t, in, model.New(model.BadRequest, "malformed stanza"))
	}
	in = dec
	r.normalize(in)
	switch in.XMLName.Local {
	case "iq":
		return r.routeIQ(t, in)
	case "message":
		return r.routeMessage(t, in)
	}
	// Presence is not translated yet.
	return nil
}

// normalize fills in what mellium removes or the server may omit: mellium
// blanks a 'from' equal to our own domain, and a stanza without 'to' is for
// the domain.
func (r *router) normalize(in *inStanza) {
	if in.From == "" {
		in.From = r.l.s.domain
	}
	if in.To == "" {
		in.To = r.l.s.domain
	}
}

func (r *router) routeIQ(t xmlstream.TokenReadEncoder, in *inStanza) error {
	switch in.Type {
	case "result", "error":
		// A response we no longer wait for (its request timed out).
		r.l.log.Debug("late IQ response", "id", in.ID, "type", in.Type, "from", in.From)
		return nil
	case "get", "set":
	default:
		return r.replyError(t, in, model.New(model.BadRequest, "unknown IQ type"))
	}
	if len(in.Children) != 1 {
		return r.replyError(t, in, model.New(model.BadRequest, "an IQ get/set has exactly one payload"))
	}
	p := in.Children[0]
	h := r.iq[iqRoute{typ: in.Type, space: p.XMLName.Space, local: p.XMLName.Local}]
	if h == nil {
		return r.replyError(t, in, model.New(model.ServiceUnavailable, ""))
	}
	payload, err := h(r.ctx, r.l, in, p)
	if err != nil {
		return r.replyError(t, in, err)
	}
	from, to, ok := r.replyAddrs(in)
	if !ok {
		return nil
	}
	if payload == nil {
		payload = xmlstream.MultiReader()
	}
	if _, err := xmlstream.Copy(t, xmlstream.Wrap(payload, iqStart(in.ID, stanza.ResultIQ, from, to))); err != nil {
		return fmt.Errorf("write IQ result: %w", err)
	}
	r.l.s.c.metrics.out("iq_result")
	return nil
}

func (r *router) routeMessage(t xmlstream.TokenReadEncoder, in *inStanza) error {
	switch in.Type {
	case "error":
		r.l.handleBounce(in)
		return nil
	case "", "normal", "chat":
		if err := r.l.handleMessageIn(r.ctx, in); err != nil {
			return r.replyError(t, in, err)
		}
		return nil
	case "groupchat":
		return r.replyError(t, in, model.New(model.ServiceUnavailable, "no group chat here"))
	}
	// headline: no reply, ever (RFC 6121 §5.2.2).
	return nil
}

// replyAddrs gives the from and to of a reply to in: from is the JID the
// stanza was sent to (or the domain, if that is not ours), to its sender.
func (r *router) replyAddrs(in *inStanza) (from, to jid.JID, ok bool) {
	to, err := jid.Parse(in.From)
	if err != nil {
		r.l.log.Warn("cannot reply: sender JID malformed", "from", in.From, "id", in.ID)
		return from, to, false
	}
	from, err = jid.Parse(in.To)
	if err != nil || from.Domainpart() != r.l.s.domain {
		from = r.l.s.jid
	}
	return from, to, true
}

// replyError answers in with a stanza error. It never answers an error or
// an IQ response (RFC 6120 §8.3.1, ERR-06).
func (r *router) replyError(t xmlstream.TokenReadEncoder, in *inStanza, cause error) error {
	if in.Type == "error" || (in.XMLName.Local == "iq" && in.Type == "result") {
		return nil
	}
	var me model.Error
	if !errors.As(cause, &me) {
		r.l.log.Error("stanza handler failed", "kind", in.kind(), "id", in.ID, "from", in.From, "err", cause)
		me = model.New(model.InternalServerError, "")
	}
	from, to, ok := r.replyAddrs(in)
	if !ok {
		return nil
	}
	se := stanzaError(me)
	var tokens xml.TokenReader
	var kind string
	switch in.XMLName.Local {
	case "iq":
		tokens = stanza.IQ{ID: in.ID, Type: stanza.ErrorIQ, From: from, To: to}.Wrap(se.TokenReader())
		kind = "iq_error"
	case "message":
		tokens = stanza.Message{ID: in.ID, Type: stanza.ErrorMessage, From: from, To: to}.Wrap(se.TokenReader())
		kind = "message_error"
	case "presence":
		tokens = stanza.Presence{ID: in.ID, Type: stanza.ErrorPresence, From: from, To: to}.Wrap(se.TokenReader())
		kind = "presence"
	default:
		return nil
	}
	r.l.log.Debug("stanza error", "kind", in.kind(), "id", in.ID, "to", in.From, "condition", me.Condition)
	if _, err := xmlstream.Copy(t, tokens); err != nil {
		return fmt.Errorf("write stanza error: %w", err)
	}
	r.l.s.c.metrics.out(kind)
	return nil
}
