package lyncemu

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// arrival is a request as the Edge passed it in, with the event it will
// become.
type arrival struct {
	req *sip.Request
	tx  sip.ServerTransaction
	ev  Event
	d   *dialog // the dialog an in-dialog request belongs to
	u   *User   // the local user
}

// arrive runs what every request goes through: the Edge's trust header,
// dialog matching and, in a dialog, the Route and CSeq checks. A request
// that names a dialog the emulator does not know is answered 481 here
// (ACK is dropped) and arrive returns nil.
func (e *Emulator) arrive(req *sip.Request, tx sip.ServerTransaction) *arrival {
	a := &arrival{req: req, tx: tx}
	a.ev = Event{
		Method: string(req.Method), CallID: callID(req), Raw: req.String(), Request: req,
		Body: string(req.Body()),
	}
	if ct := req.ContentType(); ct != nil {
		a.ev.ContentType = ct.Value()
	}
	a.ev.Violations = e.edge.inbound(req)
	from, to := req.From(), req.To()
	if from == nil || to == nil {
		e.respond(a, 400, "Bad Request")
		return nil
	}
	a.ev.Peer = uriString(bareURI(from.Address))
	if toTag := tagOf(to.Params); toTag != "" {
		e.mu.Lock()
		d, ok := e.dialogs[dialogID(callID(req), toTag, tagOf(from.Params))]
		if ok {
			a.d, a.u = d, d.user
			a.ev.User, a.ev.DialogID, a.ev.ConversationID = d.user.name, d.id(), d.convID
			a.ev.Peer = d.remote.String()
			if cs := req.CSeq(); cs != nil && !req.IsAck() {
				if cs.SeqNo <= d.remoteCSeq {
					a.ev.Violations = append(a.ev.Violations, fmt.Sprintf("CSeq %d not above the last one (%d)", cs.SeqNo, d.remoteCSeq))
				} else {
					d.remoteCSeq = cs.SeqNo
				}
			}
		}
		e.mu.Unlock()
		if !ok {
			a.ev.Type = EventNoDialog
			if u, ok := e.users[strings.ToLower(req.Recipient.User)]; ok {
				a.ev.User = u.name
			}
			removeAll(req, "Route")
			if req.IsAck() {
				// sipgo handles each request in its own goroutine, so an
				// ACK sent just before a BYE can be handled after it: an
				// ACK for a dialog BYE ended a moment ago still counts.
				if d := e.recentlyEnded(dialogID(callID(req), toTag, tagOf(from.Params))); d != nil {
					a.ev.Type, a.ev.User, a.ev.DialogID, a.ev.ConversationID = EventAck, d.user.name, d.id(), d.convID
				}
				e.record(a.ev)
				return nil
			}
			e.respond(a, 481, "Call Leg/Transaction Does Not Exist")
			return nil
		}
		a.ev.Violations = append(a.ev.Violations, consumeRoutes(req, d.ours)...)
		return a
	}
	// Outside a dialog: the Request-URI names the user. An unknown one
	// gets the Front End's well-known 4005 diagnostic (from Lync logs, not
	// from lync-dialect.md).
	removeAll(req, "Route")
	if !strings.EqualFold(req.Recipient.Host, e.opts.Domain) {
		a.ev.Type = EventUnsupported
		e.respond(a, 404, "Not Found", sip.NewHeader("ms-diagnostics-public", `4005;reason="Destination URI either not enabled for SIP or does not exist"`))
		return nil
	}
	if req.Recipient.User == "" && req.Method == sip.OPTIONS {
		return a // a ping of the domain
	}
	u, ok := e.users[strings.ToLower(req.Recipient.User)]
	if !ok {
		a.ev.Type = EventUnsupported
		e.respond(a, 404, "Not Found", sip.NewHeader("ms-diagnostics-public", `4005;reason="Destination URI either not enabled for SIP or does not exist"`))
		return nil
	}
	a.u = u
	a.ev.User = u.name
	return a
}

// respond answers a's request (when it has a transaction), sets the
// event's status and records it (unless the type is not set yet).
func (e *Emulator) respond(a *arrival, code int, reason string, hdrs ...sip.Header) {
	res := e.response(a, code, reason, hdrs...)
	e.send(a, res)
}

func (e *Emulator) response(a *arrival, code int, reason string, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(a.req, code, reason, nil)
	if a.u != nil && code != 404 {
		res.AppendHeader(sip.NewHeader("User-Agent", e.opts.UserAgent)) // the client answered
	} else {
		res.AppendHeader(sip.NewHeader("Server", "RTC/6.0")) // the Front End answered
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

// send records a's event (then more, in order) and answers its request.
// Events are recorded first so that a peer holding the answer finds them.
func (e *Emulator) send(a *arrival, res *sip.Response, more ...Event) {
	a.ev.Status = res.StatusCode
	if a.ev.Type != "" {
		e.record(a.ev)
	}
	for _, ev := range more {
		e.record(ev)
	}
	if a.tx != nil {
		if err := a.tx.Respond(res); err != nil {
			e.log.Warn("lyncemu: respond", "status", res.StatusCode, "method", a.req.Method, "err", err)
		}
	}
}

// requireCheck answers 420 when Require names an extension a Lync
// endpoint does not know (RFC 3261 §8.2.2.3).
func (e *Emulator) requireCheck(a *arrival) bool {
	var vals []string
	for _, h := range a.req.GetHeaders("Require") {
		vals = append(vals, h.Value())
	}
	var bad []string
	for _, t := range splitTags(vals) {
		if !knownOptionTags[strings.ToLower(t)] {
			bad = append(bad, t)
		}
	}
	if len(bad) == 0 {
		return true
	}
	a.ev.Type = EventUnsupported
	e.respond(a, 420, "Bad Extension", sip.NewHeader("Unsupported", strings.Join(bad, ", ")))
	return false
}

// policyCheck answers 606 + Warning: 309 when text holds the marked word.
func (e *Emulator) policyCheck(a *arrival, texts ...string) bool {
	word := e.currentBehaviour().PolicyWord
	if word == "" {
		return true
	}
	for _, t := range texts {
		if strings.Contains(strings.ToLower(t), strings.ToLower(word)) {
			a.ev.Type = EventPolicyRejected
			e.respond(a, 606, "Not Acceptable",
				sip.NewHeader("Warning", fmt.Sprintf(`309 %s "%s"`, e.opts.FrontEndFQDN, warning309Text)))
			return false
		}
	}
	return true
}

func (e *Emulator) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, tx)
	if a == nil {
		return
	}
	a.ev.Type = EventInvite
	if a.d != nil {
		// A re-INVITE (session refresh): same answer again.
		e.answerInvite(a, a.d)
		return
	}
	if !e.requireCheck(a) {
		return
	}
	b := e.currentBehaviour()
	switch mediaType(a.ev.ContentType) {
	case ctConfInvite:
		a.ev.Type = EventConfInvite
		a.ev.Focus = parseFocusURI(a.ev.Body)
		if b.ConfInviteCode >= 300 {
			e.respond(a, b.ConfInviteCode, statusText(b.ConfInviteCode))
			return
		}
		d := e.newUASDialog(a)
		res := e.response(a, b.ConfInviteCode, "OK")
		e.finishUAS(a, d, res)
		e.send(a, res)
		return
	case ctSDP:
	default:
		a.ev.Type = EventUnsupported
		e.respond(a, 415, "Unsupported Media Type", sip.NewHeader("Accept", ctSDP+", "+ctConfInvite))
		return
	}
	if media, _, ok := parseMessageSDP(a.ev.Body); !ok || media != "message" {
		// Only IM here: calls and app sharing are not emulated yet.
		a.ev.Type = EventUnsupported
		e.respond(a, 488, "Not Acceptable Here")
		return
	}
	// The embedded first message (§2.1).
	var firstText, firstHTML string
	if h := req.GetHeader("ms-text-format"); h != nil {
		if _, body, err := ParseTextFormat(h.Value()); err == nil {
			firstText = body
		} else {
			a.ev.Violations = append(a.ev.Violations, "ms-text-format: "+err.Error())
		}
	}
	for _, h := range req.GetHeaders("ms-im-format") {
		if t, body, err := ParseTextFormat(h.Value()); err == nil && t == "text/html" {
			firstHTML = body
		}
	}
	a.ev.Body, a.ev.HTML = firstText, firstHTML
	a.ev.ContentType = ctSDP
	if !e.policyCheck(a, firstText, firstHTML) {
		return
	}
	convID := ""
	if h := req.GetHeader("Ms-Conversation-ID"); h != nil {
		convID = h.Value()
	}
	a.ev.ConversationID = convID
	d := e.newUASDialog(a)
	d.convID = convID
	e.mu.Lock()
	for _, c := range a.u.chats {
		if convID != "" && c.convID == convID && c.d != nil && !c.d.closed {
			// SIPE: "This client has an IM session with the same
			// conversation ID" (§2.1): IDs must be unique per session.
			a.ev.Violations = append(a.ev.Violations, "Ms-Conversation-ID "+convID+" reused while a session with it is open")
			break
		}
	}
	chat := &Chat{user: a.u, peer: d.remote.String(), target: d.remote, convID: convID, d: d, invite: req}
	d.chat = chat
	a.u.chats = append(a.u.chats, chat)
	e.mu.Unlock()
	// The callee renders the embedded message only when it answers with
	// Supported: ms-text-format; otherwise the caller sends it again.
	var more []Event
	if (firstText != "" || firstHTML != "") && !b.NoTextFormat {
		m := a.ev
		m.Type, m.Embedded, m.Status = EventMessage, true, 200
		m.Body, m.HTML, m.ContentType = firstText, firstHTML, ctPlain
		if firstHTML != "" {
			m.ContentType = ctHTML
		}
		m.Violations = nil // reported with the INVITE
		more = append(more, m)
	}
	e.answerInvite(a, d, more...)
}

// newUASDialog makes (and registers) the dialog for an INVITE the peer
// sent.
func (e *Emulator) newUASDialog(a *arrival) *dialog {
	req := a.req
	from := req.From()
	d := &dialog{
		user: a.u, callID: callID(req), localTag: newTag(), remoteTag: tagOf(from.Params),
		remote: bareURI(from.Address), remoteDisplay: from.DisplayName, remoteEpid: epidOf(from.Params),
		remoteTarget: from.Address, routeSet: uasRouteSet(req), ours: e.edge.newRoutes(),
		localCSeq: uint32(randomBytes(1)[0]) + 1, invite: req,
	}
	if cs := req.CSeq(); cs != nil {
		d.remoteCSeq = cs.SeqNo
	}
	if ct := req.Contact(); ct != nil {
		d.remoteTarget = ct.Address
	} else {
		a.ev.Violations = append(a.ev.Violations, "INVITE without Contact")
	}
	if d.remoteTag == "" {
		a.ev.Violations = append(a.ev.Violations, "From without tag")
	}
	if d.remoteEpid == "" {
		// Not fatal: Lync copes (TC sample 16 shows a partner sending
		// one; §1.5 recommends it).
		e.log.Debug("INVITE From has no epid", "call_id", d.callID)
	}
	e.mu.Lock()
	e.dialogs[d.id()] = d
	e.mu.Unlock()
	a.d = d
	a.ev.DialogID = d.id()
	return d
}

// finishUAS puts the dialog's To tag, epid, Contact and Record-Route on a
// 2xx.
func (e *Emulator) finishUAS(a *arrival, d *dialog, res *sip.Response) {
	if to := res.To(); to != nil {
		to.Params.Add("tag", d.localTag)
		to.Params.Add("epid", a.u.epid)
	}
	// The Front End and the Edge record-routed the INVITE on its way in:
	// their entries sit above the partner's (Front End on top).
	res.PrependHeader(&sip.RecordRouteHeader{Address: d.ours.edge})
	res.PrependHeader(&sip.RecordRouteHeader{Address: d.ours.fe})
	res.AppendHeader(a.u.contact())
}

// answerInvite sends the 200 to an IM INVITE (TC sample 02; SIPE
// send_invite_response()): m=message … sip sip:<own uri>, Supported:
// ms-text-format unless Behaviour.NoTextFormat, ms-keep-alive UAS.
func (e *Emulator) answerInvite(a *arrival, d *dialog, more ...Event) {
	b := e.currentBehaviour()
	res := e.response(a, 200, "OK")
	e.finishUAS(a, d, res)
	if !b.NoTextFormat {
		res.AppendHeader(sip.NewHeader("Supported", "ms-text-format"))
	}
	res.AppendHeader(sip.NewHeader("Supported", "ms-dialog-route-set-update"))
	res.AppendHeader(sip.NewHeader("ms-keep-alive", keepAliveUAS))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	ct := sip.ContentTypeHeader(ctSDP)
	res.AppendHeader(&ct)
	res.SetBody([]byte(messageSDP(e.ip.String(), 5060, "sip:"+a.u.name+"@"+e.opts.Domain)))
	e.send(a, res, more...)
}

func (e *Emulator) onAck(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, nil)
	if a == nil {
		return
	}
	a.ev.Type = EventAck
	e.record(a.ev)
}

func (e *Emulator) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, tx)
	if a == nil {
		return
	}
	if !e.requireCheck(a) {
		return
	}
	b := e.currentBehaviour()
	if a.d == nil {
		// Pager mode: Lync chats only in sessions (§2.6).
		if !b.AcceptPager {
			a.ev.Type = EventPagerRejected
			e.respond(a, b.PagerRejectCode, statusText(b.PagerRejectCode))
			return
		}
		a.ev.Type = EventPager
		if !e.policyCheck(a, a.ev.Body) {
			return
		}
		e.respond(a, 200, "OK")
		return
	}
	mt := mediaType(a.ev.ContentType)
	if !acceptedIMTypes[mt] {
		// e.g. RFC 3994 application/im-iscomposing+xml: not in Lync's
		// accept-types (§2.3).
		a.ev.Type = EventUnsupported
		e.respond(a, 415, "Unsupported Media Type", sip.NewHeader("Accept", strings.Join(strings.Fields(AcceptTypes), ", ")))
		return
	}
	a.ev.Type = EventMessage
	if mt == "text/html" {
		a.ev.HTML = a.ev.Body
	}
	if !e.policyCheck(a, a.ev.Body) {
		return
	}
	e.respond(a, 200, "OK")
}

func (e *Emulator) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, tx)
	if a == nil {
		return
	}
	if a.d == nil {
		a.ev.Type = EventNoDialog
		e.respond(a, 481, "Call Leg/Transaction Does Not Exist")
		return
	}
	a.ev.Type = EventInfo
	if mediaType(a.ev.ContentType) == ctXML {
		if st, ok := parseKeyboardActivity(a.ev.Body); ok {
			a.ev.Type, a.ev.State = EventTyping, st
		}
	}
	e.respond(a, 200, "OK")
}

func (e *Emulator) onBye(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, tx)
	if a == nil {
		return
	}
	if a.d == nil {
		a.ev.Type = EventNoDialog
		e.respond(a, 481, "Call Leg/Transaction Does Not Exist")
		return
	}
	e.endDialog(a.d)
	a.ev.Type = EventBye
	e.respond(a, 200, "OK")
}

func (e *Emulator) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	// A CANCEL that matched a pending INVITE was answered by sipgo; this
	// one matched nothing (the emulator answers INVITEs at once).
	a := &arrival{req: req, tx: tx, ev: Event{Type: EventCancel, Method: "CANCEL", CallID: callID(req), Raw: req.String(), Request: req}}
	e.respond(a, 481, "Call Leg/Transaction Does Not Exist")
}

func (e *Emulator) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	a := e.arrive(req, tx)
	if a == nil {
		return
	}
	a.ev.Type = EventOptions
	// As SIPE answers OPTIONS (§1.7): Allow and an IM SDP.
	res := e.response(a, 200, "OK",
		sip.NewHeader("Allow", "INVITE, MESSAGE, INFO, SUBSCRIBE, OPTIONS, BYE, CANCEL, NOTIFY, ACK, REFER, BENOTIFY"),
		sip.NewHeader("Supported", "ms-text-format"))
	if a.u != nil {
		ct := sip.ContentTypeHeader(ctSDP)
		res.AppendHeader(&ct)
		res.SetBody([]byte(messageSDP(e.ip.String(), 5060, "sip:"+a.u.name+"@"+e.opts.Domain)))
	}
	e.send(a, res)
}

// statusText is the reason phrase for the codes the emulator answers
// with by configuration.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 403:
		return "Forbidden"
	case 405:
		return "Method Not Allowed"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call Leg/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 603:
		return "Decline"
	case 606:
		return "Not Acceptable"
	}
	return "Status " + strconv.Itoa(code)
}

// endedMemory is how long a dialog ended by BYE is remembered, for an ACK
// that arrives after the BYE.
const endedMemory = 30 * time.Second

// endDialog closes d after a BYE, remembering it for late ACKs.
func (e *Emulator) endDialog(d *dialog) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	d.closed = true
	delete(e.dialogs, d.id())
	for id, x := range e.ended {
		if now.Sub(x.at) > endedMemory {
			delete(e.ended, id)
		}
	}
	e.ended[d.id()] = endedDialog{d: d, at: now}
}

type endedDialog struct {
	d  *dialog
	at time.Time
}

func (e *Emulator) recentlyEnded(id string) *dialog {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.ended[id]; ok && time.Since(x.at) <= endedMemory {
		return x.d
	}
	return nil
}
