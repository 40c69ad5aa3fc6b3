package component

import (
	"context"
	"encoding/xml"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/shared/model"
)

// XEP-0030 namespaces and what we answer with.
const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	gatewayName  = "Parley SIP gateway"
)

type identity struct{ category, typ, name string }

// The component domain is a gateway to SIP/SIMPLE (R0030-05/06); each SIP
// user behaves as a client. A user's features list only what Parley
// translates today: receipts, chat states and Jingle join the list when
// they are translated (R0030-07, R0085-07, R0184-01).
var (
	domainIdentity = identity{"gateway", "simple", gatewayName}
	domainFeatures = []string{nsDiscoInfo, nsDiscoItems, nsPing, `jid\20escaping`}
	userIdentity   = identity{"client", "pc", ""}
	userFeatures   = []string{nsDiscoInfo, nsPing}
)

func registerDisco(r *router) {
	r.handleIQ("get", xml.Name{Space: nsDiscoInfo, Local: "query"}, discoInfo)
	r.handleIQ("get", xml.Name{Space: nsDiscoItems, Local: "query"}, discoItems)
}

type entityKind int

const (
	entityDomain entityKind = iota + 1
	entityUser
)

// entity says what a JID addressed to us stands for: the domain itself, or
// a SIP user of it. A JID that maps to nothing is item-not-found.
func (l *link) entity(to string) (entityKind, error) {
	j, err := jid.Parse(to)
	if err != nil || j.Domainpart() != l.s.domain {
		return 0, model.New(model.ItemNotFound, "")
	}
	if j.Localpart() == "" {
		return entityDomain, nil
	}
	if _, err := l.s.c.deps.Mapper.ParseJID(to); err != nil {
		return 0, model.New(model.ItemNotFound, "no SIP user has this address")
	}
	return entityUser, nil
}

func discoInfo(_ context.Context, l *link, in *inStanza, q child) (xml.TokenReader, error) {
	kind, err := l.entity(in.To)
	if err != nil {
		return nil, err
	}
	id, features := domainIdentity, domainFeatures
	if kind == entityUser {
		id, features = userIdentity, userFeatures
	}
	idAttrs := []xml.Attr{{Name: xml.Name{Local: "category"}, Value: id.category}, {Name: xml.Name{Local: "type"}, Value: id.typ}}
	if id.name != "" {
		idAttrs = append(idAttrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: id.name})
	}
	parts := []xml.TokenReader{xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: idAttrs})}
	for _, f := range features {
		parts = append(parts, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "feature"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: f}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(parts...), queryStart(nsDiscoInfo, q.attr("node"))), nil
}

// discoItems: neither the domain nor a user has items (an empty query,
// R0030-04).
func discoItems(_ context.Context, l *link, in *inStanza, q child) (xml.TokenReader, error) {
	if _, err := l.entity(in.To); err != nil {
		return nil, err
	}
	return xmlstream.Wrap(nil, queryStart(nsDiscoItems, q.attr("node"))), nil
}

// queryStart is <query xmlns=ns node=node> (node echoed, R0030-03).
func queryStart(ns, node string) xml.StartElement {
	start := xml.StartElement{Name: xml.Name{Space: ns, Local: "query"}}
	if node != "" {
		start.Attr = []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}
	}
	return start
}
