package loadgen

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

const (
	nsStream = "http://etherx.jabber.org/streams"
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind   = "urn:ietf:params:xml:ns:xmpp-bind"
	nsStanza = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// node is a parsed top-level stream element: just enough DOM for stanzas.
// Names are raw (prefix:local); namespaces are not resolved, which is all
// the load generators need and keeps decoding cheap (xml.Decoder.RawToken).
type node struct {
	prefix, local string
	attrs         []xml.Attr
	kids          []*node
	text          []byte
}

func (n *node) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (n *node) child(local string) *node {
	for _, k := range n.kids {
		if k.local == local {
			return k
		}
	}
	return nil
}

// stream reads and writes one XML stream over a TCP connection.
type stream struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	dec  *xml.Decoder
}

func newStream(conn net.Conn) *stream {
	br := bufio.NewReaderSize(conn, 64<<10)
	dec := xml.NewDecoder(br) // bufio.Reader is an io.ByteReader: no extra buffering
	dec.Strict = true
	return &stream{conn: conn, br: br, bw: bufio.NewWriterSize(conn, 64<<10), dec: dec}
}

// errStreamEnd is returned when the peer closed its stream.
var errStreamEnd = errors.New("stream closed by peer")

// readTop reads the next top-level element. A stream header
// (<stream:stream>) is returned without children and with header true.
func (s *stream) readTop() (n *node, header bool, err error) {
	for {
		tok, err := s.dec.RawToken()
		if err != nil {
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{prefix: t.Name.Space, local: t.Name.Local, attrs: copyAttrs(t.Attr)}
			if t.Name.Local == "stream" && t.Name.Space == "stream" {
				return n, true, nil
			}
			if err := s.readChildren(n); err != nil {
				return nil, false, err
			}
			if n.prefix == "stream" && n.local == "error" {
				return nil, false, streamError(n)
			}
			return n, false, nil
		case xml.EndElement:
			if t.Name.Local == "stream" {
				return nil, false, errStreamEnd
			}
			return nil, false, fmt.Errorf("unexpected </%s>", t.Name.Local)
		}
		// whitespace, <?xml?>: skip
	}
}

func (s *stream) readChildren(n *node) error {
	for {
		tok, err := s.dec.RawToken()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			k := &node{prefix: t.Name.Space, local: t.Name.Local, attrs: copyAttrs(t.Attr)}
			n.kids = append(n.kids, k)
			if err := s.readChildren(k); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			n.text = append(n.text, t...)
		}
	}
}

func copyAttrs(a []xml.Attr) []xml.Attr {
	if len(a) == 0 {
		return nil
	}
	return append([]xml.Attr(nil), a...)
}

func streamError(n *node) error {
	var conds []string
	for _, k := range n.kids {
		if k.local == "text" {
			conds = append(conds, fmt.Sprintf("%q", k.text))
		} else {
			conds = append(conds, k.local)
		}
	}
	return fmt.Errorf("stream error: %s", strings.Join(conds, " "))
}

// stanzaErrorCondition is the defined condition of an <error/> child.
func stanzaErrorCondition(n *node) string {
	e := n.child("error")
	if e == nil {
		return "error"
	}
	for _, k := range e.kids {
		if k.local != "text" {
			return k.local
		}
	}
	return "error"
}

// escaper escapes text for element content and single- or double-quoted
// attribute values.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

func writeEscaped(w io.StringWriter, s string) {
	if strings.ContainsAny(s, `&<>'"`) {
		s = escaper.Replace(s)
	}
	w.WriteString(s)
}
