package sipside

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/shared/model"
)

// Building an outbound pager-mode MESSAGE (RFC 3428, RFC 7572 §4) and
// choosing its transport.

// udpLimit is the largest request sent over UDP: RFC 3261 §18.1.1 and
// RFC 3428 §6 — with the path MTU unknown, a request over 1300 bytes MUST
// go over a congestion-controlled transport.
const udpLimit = 1300

// outMessage is a MESSAGE ready to send: the request and the URIs it was
// built from, for logs.
type outMessage struct {
	req       *sip.Request
	transport string // "UDP" or "TCP"
	size      int    // serialized size, sent-by included at its longest
}

// buildMessage builds the MESSAGE for msg, from fromURI to toURI, addressed
// to proxy. Call-ID, From tag and Via branch all derive from eventID: when
// the bus redelivers an event whose MESSAGE already left (the process died
// before the acknowledgement), the resend is a retransmission of the same
// transaction, which the proxy and the far UA absorb (RFC 3261 §17.2.3)
// instead of a second message. The caller sets the Via sent-by.
func buildMessage(msg model.Message, fromURI, toURI, eventID string, proxy netip.AddrPort) (outMessage, error) {
	var to, from sip.Uri
	if err := sip.ParseUri(toURI, &to); err != nil {
		return outMessage{}, fmt.Errorf("parse To URI %q: %w", toURI, err)
	}
	if err := sip.ParseUri(fromURI, &from); err != nil {
		return outMessage{}, fmt.Errorf("parse From URI %q: %w", fromURI, err)
	}

	req := sip.NewRequest(sip.MESSAGE, *to.Clone())
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Params: sip.NewParams()}
	via.Params.Add("branch", outboundBranch(eventID))
	req.AppendHeader(via)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	fromHdr := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fromHdr.Params.Add("tag", outboundTag(eventID))
	req.AppendHeader(fromHdr)
	req.AppendHeader(&sip.ToHeader{Address: *to.Clone()})
	cid := sip.CallIDHeader(outboundCallID(eventID))
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	req.AppendHeader(&ct)
	if subj := headerSafe(msg.Subject); subj != "" {
		req.AppendHeader(sip.NewHeader("Subject", subj))
	}
	if lang := firstLanguage(msg.Lang); lang != "" {
		req.AppendHeader(sip.NewHeader("Content-Language", lang))
	}
	req.SetBody([]byte(msg.Body)) // adds Content-Length
	req.SetDestination(proxy.String())

	out := outMessage{req: req, transport: "UDP", size: len(req.String()) + sentByLen(proxy)}
	if out.size > udpLimit {
		out.transport = "TCP"
		via.Transport = "TCP"
	}
	req.SetTransport(out.transport)
	return out, nil
}

// sentByLen is the longest Via sent-by the transport may fill in for a
// socket of proxy's address family.
func sentByLen(proxy netip.AddrPort) int {
	if proxy.Addr().Is4() {
		return len("255.255.255.255:65535")
	}
	return len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
}

// headerSafe makes text safe as a header value: one line, no control
// characters (an XMPP <subject/> may hold newlines).
func headerSafe(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == ' '
	}), " ")
}
