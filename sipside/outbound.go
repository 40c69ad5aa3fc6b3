package sipside

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// Outbound: model.Message events from the component become MESSAGE requests
// through the outbound proxy. The event is acknowledged only once the far
// side answered (or its failure was reported back to the XMPP sender):
// accepted means not lost, and nothing fails silently.

// outboundGroup is the consumer group of model.TopicToSIP.
const outboundGroup = "sipside"

// Defaults for the retry policy on transport failures.
const (
	defaultMaxAttempts = 5
	defaultRetryBase   = time.Second
	defaultRetryMax    = 30 * time.Second
)

// errEventPrefix marks the MessageError events sipside publishes.
const errEventPrefix = "se:"

// Outcomes of one send.
var (
	errSendTransport = errors.New("outbound proxy unreachable")
	errSendTimeout   = errors.New("no final response in time")
)

// onToSIP is the handler of model.TopicToSIP.
func (s *Server) onToSIP(ctx context.Context, ev store.Event) error {
	switch ev.Type {
	case model.EventMessage:
		return s.deliver(ctx, ev)
	case model.EventMessageError:
		s.onBounce(ev)
		return nil
	default:
		s.metrics.undeliverables.Inc()
		s.log.Error("event of unknown type on the SIP topic acknowledged unhandled", "event", ev.ID, "type", ev.Type, "conv", ev.Key)
		return nil
	}
}

// onBounce logs an XMPP error about a message that came from SIP after the
// MESSAGE was already answered (ERR-03: no second final response).
// TODO(imdn): answer with an RFC 5438 negative delivery notification when
// the sender asked for one.
func (s *Server) onBounce(ev store.Event) {
	s.metrics.bounces.Inc()
	var me model.MessageError
	if err := json.Unmarshal(ev.Data, &me); err != nil {
		s.log.Warn("undecodable XMPP bounce for a message from SIP", "event", ev.ID, "conv", ev.Key, "err", err)
		return
	}
	s.log.Warn("message from SIP bounced on the XMPP side after it was answered",
		"conv", me.ConvID, "msg", me.ID, "condition", me.Err.Condition, "text", me.Err.Text)
}

// deliver sends one Message as a MESSAGE. A nil return acknowledges the
// event: delivered, or its failure reported to the XMPP side. An error
// return asks the bus for a redelivery (proxy unreachable, store or bus
// trouble).
func (s *Server) deliver(ctx context.Context, ev store.Event) error {
	var msg model.Message
	if err := json.Unmarshal(ev.Data, &msg); err != nil {
		s.metrics.undeliverables.Inc()
		s.log.Error("undecodable message event acknowledged undelivered", "event", ev.ID, "conv", ev.Key, "err", err)
		return nil
	}
	if msg.ConvID == "" {
		msg.ConvID = model.ConversationID(msg.From, msg.To)
	}
	log := s.log.With("conv", msg.ConvID, "msg", msg.ID, "event", ev.ID)
	if msg.Body == "" {
		log.Info("message without body not sent over SIP")
		return nil
	}

	// Once started, a delivery runs to its end even while draining: the
	// send, and the bookkeeping that keeps a redelivery from sending again.
	// Only the pause before a retry is cut short by ctx.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.sendTimeout+publishTimeout)
	defer cancel()
	pauseCtx := ctx
	ctx = wctx

	rec, err := s.records.load(ctx, ev.ID)
	if err != nil {
		return fmt.Errorf("sipside: deliver %s: %w", ev.ID, err)
	}
	if rec.Final != nil {
		// Decided before; the report did not get through last time.
		return s.reportFailure(ctx, log, ev, msg, *rec.Final)
	}
	if rec.Attempts >= s.maxAttempts {
		s.metrics.messagesOut.WithLabelValues("none", outGaveUp).Inc()
		log.Warn("MESSAGE given up: outbound proxy unreachable", "attempts", rec.Attempts)
		return s.fail(ctx, log, ev, msg, rec, model.New(model.RemoteServerTimeout, "SIP proxy unreachable"))
	}

	out, err := s.outMessage(msg, ev.ID)
	if err != nil {
		s.metrics.messagesOut.WithLabelValues("none", outRejected).Inc()
		log.Warn("message addresses do not map to SIP", "from", msg.From.String(), "to", msg.To.String(), "err", err)
		return s.fail(ctx, log, ev, msg, rec, unmappableError(err))
	}

	rec.Attempts++
	if err := s.records.save(ctx, ev.ID, rec); err != nil {
		return fmt.Errorf("sipside: deliver %s: %w", ev.ID, err)
	}
	log = log.With("call_id", callID(out.req), "transport", out.transport)
	res, err := s.send1(ctx, out)
	switch {
	case errors.Is(err, errSendTransport) && rec.Attempts >= s.maxAttempts:
		s.metrics.messagesOut.WithLabelValues(out.label(), outGaveUp).Inc()
		log.Warn("MESSAGE given up: outbound proxy unreachable", "attempts", rec.Attempts, "err", err)
		return s.fail(ctx, log, ev, msg, rec, model.New(model.RemoteServerTimeout, "SIP proxy unreachable"))
	case errors.Is(err, errSendTransport):
		s.metrics.messagesOut.WithLabelValues(out.label(), outTransport).Inc()
		log.Warn("MESSAGE not sent; will retry", "attempt", rec.Attempts, "of", s.maxAttempts, "err", err)
		s.pause(pauseCtx, rec.Attempts)
		return fmt.Errorf("sipside: deliver %s (attempt %d): %w", ev.ID, rec.Attempts, err)
	case err != nil:
		s.metrics.messagesOut.WithLabelValues(out.label(), outTimeout).Inc()
		log.Warn("MESSAGE got no final response", "err", err)
		return s.fail(ctx, log, ev, msg, rec, model.New(model.RemoteServerTimeout, "no answer from the SIP side"))
	case res.IsSuccess():
		s.metrics.messagesOut.WithLabelValues(out.label(), classLabel(res.StatusCode)).Inc()
		log.Debug("MESSAGE delivered", "status", res.StatusCode)
		if err := s.records.drop(ctx, ev.ID); err != nil {
			log.Debug("delivery record left to expire", "err", err)
		}
		return nil
	default:
		s.metrics.messagesOut.WithLabelValues(out.label(), classLabel(res.StatusCode)).Inc()
		log.Info("MESSAGE refused by the SIP side", "status", res.StatusCode, "reason", res.Reason)
		return s.fail(ctx, log, ev, msg, rec, model.FromSIP(res.StatusCode, res.Reason))
	}
}

// label is the transport as a metric label value.
func (o outMessage) label() string { return strings.ToLower(o.transport) }

// outMessage maps msg's addresses and builds its request.
func (s *Server) outMessage(msg model.Message, eventID string) (outMessage, error) {
	toURI, err := s.mapper.URIOfSIPUser(msg.To)
	if err != nil {
		return outMessage{}, fmt.Errorf("recipient %s: %w", msg.To, err)
	}
	fromURI, err := s.mapper.URIOfXMPPUser(msg.From)
	if err != nil {
		return outMessage{}, fmt.Errorf("sender %s: %w", msg.From, err)
	}
	out, err := buildMessage(msg, fromURI, toURI, eventID, s.st.outboundProxy)
	if err != nil {
		return outMessage{}, err
	}
	if out.transport == "UDP" {
		// Send from the UDP listener when it has a definite address, so the
		// proxy sees one SIP peer at one address:port for both directions.
		out.req.Laddr = s.udpLaddr
	}
	// The Via sent-by names our listener, not the ephemeral port of an
	// outgoing TCP connection: a resend after a restart then carries the same
	// sent-by and branch, so the proxy matches it to the same transaction.
	if la := s.Addr(strings.ToLower(out.transport)); la != nil {
		if host, port, err := sip.ParseAddr(la.String()); err == nil && port > 0 {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				via := out.req.Via()
				via.Host, via.Port = host, port
			}
		}
	}
	return out, nil
}

// unmappableError tells the XMPP sender why its message cannot be written
// as SIP (ERR-05: jid-malformed for addresses that do not parse).
func unmappableError(err error) model.Error {
	if errors.Is(err, address.ErrMalformed) {
		return model.New(model.JIDMalformed, "address cannot be written as a SIP URI")
	}
	return model.New(model.ItemNotFound, "no SIP address for this recipient")
}

// send1 runs one client transaction and waits for its final response
// (sipgo retransmits over UDP and fires Timer F), bounded by sendTimeout.
func (s *Server) send1(ctx context.Context, out outMessage) (*sip.Response, error) {
	tctx, cancel := context.WithTimeout(ctx, s.sendTimeout)
	defer cancel()
	tx, err := s.client.TransactionRequest(tctx, out.req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSendTransport, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			err := tx.Err()
			if errors.Is(err, sip.ErrTransactionTransport) {
				return nil, fmt.Errorf("%w: %v", errSendTransport, err)
			}
			return nil, fmt.Errorf("%w: %v", errSendTimeout, err)
		case <-tctx.Done():
			return nil, fmt.Errorf("%w: %v", errSendTimeout, tctx.Err())
		}
	}
}

// fail records the decided failure, then reports it.
func (s *Server) fail(ctx context.Context, log *slog.Logger, ev store.Event, msg model.Message, rec deliveryRecord, e model.Error) error {
	rec.Final = &e
	if err := s.records.save(ctx, ev.ID, rec); err != nil {
		// Reporting matters more; a redelivery might then send again.
		log.Warn("failure not recorded", "err", err)
	}
	return s.reportFailure(ctx, log, ev, msg, e)
}

// reportFailure publishes a MessageError for msg back to the XMPP side.
func (s *Server) reportFailure(ctx context.Context, log *slog.Logger, ev store.Event, msg model.Message, e model.Error) error {
	data, err := json.Marshal(model.MessageError{ID: msg.ID, ConvID: msg.ConvID, From: msg.To, To: msg.From, Err: e})
	if err != nil {
		return fmt.Errorf("sipside: encode message error: %w", err)
	}
	out := store.Event{ID: errEventPrefix + ev.ID, Key: msg.ConvID, Type: model.EventMessageError, Data: data}
	if err := s.bus.Publish(ctx, model.TopicToXMPP, out); err != nil {
		return fmt.Errorf("sipside: report failure of %s: %w", ev.ID, err)
	}
	log.Info("delivery failure reported to the XMPP side", "condition", e.Condition, "sip_status", e.SIPStatus)
	return nil
}

// pause waits before a redelivery may come: exponential, capped, cut short
// when ctx ends (draining).
func (s *Server) pause(ctx context.Context, attempt int) {
	d := s.retryBase
	for i := 1; i < attempt && d < s.retryMax; i++ {
		d *= 2
	}
	d = min(d, s.retryMax)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
