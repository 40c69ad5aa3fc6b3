package component

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/parleygw/parley/shared/model"
)

// nsXML is the namespace of the xml: prefix (xml:lang).
const nsXML = "http://www.w3.org/XML/1998/namespace"

// inStanza is one stanza received from the server, decoded far enough for
// the router and the handlers.
type inStanza struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	Type    string `xml:"type,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Lang    string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`

	Bodies   []langText    `xml:"body"`
	Subjects []langText    `xml:"subject"`
	Thread   *langText     `xml:"thread"`
	Error    *stanza.Error `xml:"error"`
	// Children are the other child elements (an IQ's payload, extensions).
	Children []child `xml:",any"`
}

type langText struct {
	XMLName xml.Name
	Lang    string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Text    string `xml:",chardata"`
}

type child struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
}

func (c child) attr(local string) string {
	for _, a := range c.Attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// isStanzaNS reports whether an element is in the stanza namespace (a
// child of the stanza in the stream's default namespace).
func isStanzaNS(n xml.Name) bool {
	return n.Space == "" || n.Space == component.NSAccept || n.Space == stanza.NSClient
}

// kind is a short bounded name of the stanza for metrics and logs.
func (in *inStanza) kind() string { return stanzaKind(in.XMLName.Local, in.Type) }

func stanzaKind(name, typ string) string {
	switch name {
	case "message":
		switch typ {
		case "", "normal":
			return "message_normal"
		case "chat", "error", "groupchat", "headline":
			return "message_" + typ
		}
		return "message_other"
	case "iq":
		switch typ {
		case "get", "set", "result", "error":
			return "iq_" + typ
		}
		return "iq_other"
	case "presence":
		return "presence"
	}
	return "other"
}

// pick returns the text for lang among alternatives (RFC 6121 §5.2.3: one
// per xml:lang): the one in lang, else the one without xml:lang, else the
// first; with the language it is in.
func pick(alts []langText, lang string) (text, textLang string, ok bool) {
	var first, plain *langText
	for i := range alts {
		a := &alts[i]
		if !isStanzaNS(a.XMLName) {
			continue
		}
		if first == nil {
			first = a
		}
		if a.Lang == lang && lang != "" {
			return a.Text, a.Lang, true
		}
		if a.Lang == "" && plain == nil {
			plain = a
		}
	}
	switch {
	case plain != nil:
		return plain.Text, lang, true
	case first != nil:
		return first.Text, first.Lang, true
	}
	return "", "", false
}

// errTooLarge is returned while decoding a stanza past maxStanza bytes.
var errTooLarge = errors.New("stanza too large")

// limitedReader fails once more than max bytes have been read from conn
// since start.
type limitedReader struct {
	r     xml.TokenReader
	conn  *countingConn
	start int64
	max   int64
}

func (l *limitedReader) Token() (xml.Token, error) {
	if l.max > 0 && l.conn != nil && l.conn.count()-l.start > l.max {
		return nil, errTooLarge
	}
	return l.r.Token()
}

// decodeStanza reads the stanza that starts with start from r (mellium's
// handler reader yields the stanza's content and its end element).
func decodeStanza(r xml.TokenReader, start xml.StartElement) (*inStanza, error) {
	// The start element goes through the decoder too: it checks that every
	// end element matches a start it has seen.
	in := &inStanza{}
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(start.Copy()), r))
	if err := d.Decode(in); err != nil {
		return in, err
	}
	return in, nil
}

// headerOf fills in what the start element alone says, for replying to a
// stanza that could not be decoded.
func headerOf(start xml.StartElement) *inStanza {
	in := &inStanza{XMLName: start.Name}
	for _, a := range start.Attr {
		if a.Name.Space == nsXML && a.Name.Local == "lang" {
			in.Lang = a.Value
			continue
		}
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			in.ID = a.Value
		case "type":
			in.Type = a.Value
		case "from":
			in.From = a.Value
		case "to":
			in.To = a.Value
		}
	}
	return in
}

// outMessage is a <message/> to write.
type outMessage struct {
	ID, Type, Lang   string
	From, To         jid.JID
	Body, Subject    string
	Thread           string
	Err              *model.Error
	includeEmptyBody bool
}

// tokens renders m. Children are in the stream's default namespace.
func (m outMessage) tokens() xml.TokenReader {
	var payload []xml.TokenReader
	if m.Subject != "" {
		payload = append(payload, textElement("subject", m.Subject))
	}
	if m.Body != "" || m.includeEmptyBody {
		payload = append(payload, textElement("body", m.Body))
	}
	if m.Thread != "" {
		payload = append(payload, textElement("thread", m.Thread))
	}
	if m.Err != nil {
		payload = append(payload, stanzaError(*m.Err).TokenReader())
	}
	return stanza.Message{
		ID:   m.ID,
		From: m.From,
		To:   m.To,
		Lang: m.Lang,
		Type: stanza.MessageType(m.Type),
	}.Wrap(xmlstream.MultiReader(payload...))
}

func textElement(name, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: name}})
}

// stanzaError renders a model.Error as an XMPP stanza error.
func stanzaError(e model.Error) stanza.Error {
	se := stanza.Error{Type: stanza.ErrorType(e.Type), Condition: stanza.Condition(e.Condition)}
	if se.Type == "" {
		se.Type = stanza.Cancel
	}
	if se.Condition == "" {
		se.Condition = stanza.UndefinedCondition
	}
	if e.Text != "" {
		se.Text = map[string]string{"": e.Text}
	}
	return se
}

// fromStanzaError maps a received stanza error to the neutral model.
func fromStanzaError(se *stanza.Error) model.Error {
	if se == nil {
		return model.FromXMPP(model.UndefinedCondition, "error stanza without <error/>")
	}
	var text string
	for lang, t := range se.Text {
		text = t
		if lang == "" {
			break
		}
	}
	return model.FromXMPP(string(se.Condition), text)
}

// iqStart is the start element of an IQ.
func iqStart(id string, typ stanza.IQType, from, to jid.JID) xml.StartElement {
	return stanza.IQ{ID: id, Type: typ, From: from, To: to}.StartElement()
}

// randomID is a fresh stanza or event id (128 bits, hex).
func randomID() string {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(fmt.Sprintf("component: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}
