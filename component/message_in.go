package component

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// handleMessageIn turns a chat or normal <message/> with a body into a
// model.Message on model.TopicToSIP (R7572-01/02). It returns a model.Error
// for the sender when the message cannot be taken.
func (l *link) handleMessageIn(ctx context.Context, in *inStanza) error {
	body, bodyLang, ok := pick(in.Bodies, in.Lang)
	if !ok {
		// Chat states, receipts and other body-less messages are not
		// translated yet.
		l.log.Debug("ignoring message without body", "id", in.ID, "from", in.From)
		return nil
	}
	mapper := l.s.c.deps.Mapper
	fromJID, err := jid.Parse(in.From)
	if err != nil {
		return model.New(model.JIDMalformed, "sender address is malformed")
	}
	if l.s.c.streams[fromJID.Domainpart()] != nil {
		// From one of our own domains: a message we wrote, routed back.
		// Passing it on would loop; answering it would too.
		l.log.Warn("dropping message from a domain this component serves", "id", in.ID, "from", in.From, "to", in.To)
		return nil
	}
	from, err := mapper.ParseJID(in.From)
	if err != nil {
		return model.New(model.JIDMalformed, "sender address cannot be mapped to SIP")
	}
	to, err := l.recipient(in.To)
	if err != nil {
		return err
	}

	subject, _, _ := pick(in.Subjects, in.Lang)
	m := model.Message{
		ID:      in.ID,
		ConvID:  model.ConversationID(from, to),
		From:    from,
		To:      to,
		Type:    model.Normal,
		Body:    body,
		Subject: subject,
		Lang:    bodyLang,
	}
	if in.Type == "chat" {
		m.Type = model.Chat
	}
	if in.Thread != nil {
		m.Thread = in.Thread.Text
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	ev := store.Event{ID: inboundEventID(fromJID.String(), in.ID), Key: m.ConvID, Type: model.EventMessage, Data: data}
	log := l.log.With("conv", m.ConvID, "id", in.ID)

	pctx, cancel := context.WithTimeout(ctx, l.s.c.publishTimeout)
	defer cancel()
	if err := l.s.c.deps.Bus.Publish(pctx, model.TopicToSIP, ev); err != nil {
		l.s.c.metrics.publishFailures.WithLabelValues(model.EventMessage).Inc()
		log.Error("cannot hand message to the SIP side", "event", ev.ID, "err", err)
		return model.New(model.RemoteServerTimeout, "the gateway could not take the message now; try again")
	}
	log.Debug("message to SIP", "event", ev.ID, "type", m.Type, "bytes", len(body))
	return nil
}

// recipient maps the 'to' of an inbound message to the SIP user it names:
// it must be a user (not the bare domain) of the domain of this stream.
func (l *link) recipient(to string) (address.Address, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return address.Address{}, model.New(model.JIDMalformed, "recipient address is malformed")
	}
	if j.Domainpart() != l.s.domain || j.Localpart() == "" {
		return address.Address{}, model.New(model.ItemNotFound, "no SIP user has this address")
	}
	a, err := l.s.c.deps.Mapper.ParseJID(to)
	switch {
	case errors.Is(err, address.ErrMalformed):
		return a, model.New(model.JIDMalformed, "recipient address cannot be mapped to SIP")
	case err != nil:
		return a, model.New(model.ItemNotFound, "no SIP user has this address")
	case !l.s.c.deps.Mapper.ServesSIPDomain(j.Domainpart()) || a.User == "":
		return a, model.New(model.ItemNotFound, "no SIP user has this address")
	}
	return a, nil
}

// inboundEventID is stable for one stanza (sender + id), so a message the
// server delivers twice is published under the same event id and the far
// side de-duplicates it. Without a stanza id it is random.
func inboundEventID(fromFull, id string) string {
	if id == "" {
		return "x:" + randomID()
	}
	sum := sha256.Sum256([]byte(fromFull + "\x00" + id))
	return "x:" + hex.EncodeToString(sum[:])[:32]
}
