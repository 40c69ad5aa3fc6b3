package sipside

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// Inbound pager-mode MESSAGE (RFC 3428, RFC 7572 §5): check it, hand it to
// the bus for the component, and answer with the XMPP side's verdict — or
// 202 Accepted once it is durably queued and no verdict came in time.

// publishTimeout bounds one Publish; past it the proxy is told to retry.
const publishTimeout = 5 * time.Second

// onMessage handles a MESSAGE that passed the guard.
func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	msg, e := s.readMessage(req)
	if e != nil {
		s.log.Info("MESSAGE refused", "call_id", callID(req), "status", e.Status, "reason", e.Reason, "err", e.Err)
		s.respond(req, tx, e)
		return
	}
	log := s.log.With("conv", msg.ConvID, "call_id", callID(req), "msg", msg.ID)
	res := s.handOver(log, req, msg)
	s.send(req, tx, res)
}

// readMessage turns a MESSAGE into the neutral model, or says why not.
func (s *Server) readMessage(req *sip.Request) (model.Message, *sipError) {
	if sc := req.Recipient.Scheme; sc != "sip" && sc != "sips" {
		return model.Message{}, refuse(416, "", fmt.Errorf("scheme %q", sc))
	}
	if tag, ok := req.To().Params.Get("tag"); ok && tag != "" {
		// In-dialog MESSAGE: sipside holds no dialogs (yet), so this one
		// matches none (RFC 3261 §12.2.2).
		return model.Message{}, refuse(481, "", errors.New("MESSAGE inside an unknown dialog"))
	}
	if n := len(req.Body()); n > s.st.maxMessageBytes {
		return model.Message{}, refuse(413, "", fmt.Errorf("body of %d bytes, limit %d", n, s.st.maxMessageBytes))
	}
	to, e := s.recipient(req)
	if e != nil {
		return model.Message{}, e
	}
	from, err := s.mapper.ParseSIPURI(req.From().Address.String())
	if err != nil {
		return model.Message{}, refuse(400, "Bad From URI", fmt.Errorf("from %s: %w", req.From().Address.Addr(), err))
	}
	var ct string
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	t, e := extractText(ct, req.Body())
	if e != nil {
		return model.Message{}, e
	}
	if t.Body == "" {
		return model.Message{}, refuse(400, "Empty message body", nil)
	}
	lang := t.Lang
	if h := req.GetHeader("Content-Language"); h != nil {
		lang = firstLanguage(h.Value())
	}
	var subject string
	if h := req.GetHeader("Subject"); h != nil {
		subject = headerSafe(strings.ToValidUTF8(h.Value(), "\uFFFD"))
	}
	return model.Message{
		ID:      inboundID(req),
		ConvID:  model.ConversationID(from, to),
		From:    from,
		To:      to,
		Type:    model.Chat,
		Body:    t.Body,
		Subject: subject,
		Lang:    lang,
		ReplyTo: replyTopic(s.instance),
	}, nil
}

// recipient maps the Request-URI to the XMPP user it stands for; when the
// proxy rewrote the Request-URI to our address, the To URI is used instead.
// A domain sipside does not serve, or a user that does not map, is 404; a
// URI the mapper finds malformed is 400.
func (s *Server) recipient(req *sip.Request) (address.Address, *sipError) {
	for _, u := range []*sip.Uri{&req.Recipient, &req.To().Address} {
		if u.User == "" || !s.servesHost(u.Host) {
			continue
		}
		a, err := s.mapper.ParseSIPURI(u.String())
		switch {
		case errors.Is(err, address.ErrMalformed):
			return address.Address{}, refuse(400, "Bad Request-URI", fmt.Errorf("%s: %w", u.Addr(), err))
		case err != nil:
			return address.Address{}, refuse(404, "", fmt.Errorf("%s: %w", u.Addr(), err))
		}
		return a, nil
	}
	return address.Address{}, refuse(404, "", fmt.Errorf("%s: not a user of a domain served here", req.Recipient.Addr()))
}

// handOver publishes msg for the component and builds the answer: 503 if
// the bus did not take it (nothing was accepted, so nothing is lost), then
// the XMPP side's verdict if it comes within DeliveryWait, else 202.
func (s *Server) handOver(log *slog.Logger, req *sip.Request, msg model.Message) *sip.Response {
	data, err := json.Marshal(msg)
	if err != nil {
		return errorResponse(req, refuse(500, "", err))
	}
	ev := store.Event{ID: inboundEventPrefix + msg.ID, Key: msg.ConvID, Type: model.EventMessage, Data: data}

	verdict, stopWaiting := s.waiters.add(ev.ID)
	defer stopWaiting()

	ctx, cancel := context.WithTimeout(s.runCtx, publishTimeout)
	err = s.bus.Publish(ctx, model.TopicToXMPP, ev)
	cancel()
	if err != nil {
		log.Warn("MESSAGE not handed to the bus; proxy told to retry", "err", err)
		return errorResponse(req, refuse(503, "", err, sip.NewHeader("Retry-After", retryAfterSeconds)))
	}

	wait := time.NewTimer(s.st.deliveryWait)
	defer wait.Stop()
	select {
	case r := <-verdict:
		if r.Err != nil {
			s.metrics.deliveryWait.WithLabelValues(waitError).Inc()
			e := fromModelError(*r.Err)
			log.Info("MESSAGE refused by the XMPP side", "condition", r.Err.Condition, "status", e.Status)
			return errorResponse(req, e)
		}
		s.metrics.deliveryWait.WithLabelValues(waitOK).Inc()
		log.Debug("MESSAGE delivered to the XMPP side")
		return sip.NewResponseFromRequest(req, 200, "OK", nil)
	case <-wait.C:
		s.metrics.deliveryWait.WithLabelValues(waitAccepted).Inc()
		log.Info("MESSAGE queued; no verdict from the XMPP side in time", "waited", s.st.deliveryWait)
		return sip.NewResponseFromRequest(req, 202, "Accepted", nil)
	}
}
