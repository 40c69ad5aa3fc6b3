package lyncemu

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// EventType says what the emulator received (and how it answered).
type EventType string

// Event types.
const (
	// EventInvite: an IM session INVITE, answered with Status (200 when
	// the session was set up). Body/HTML hold the embedded first message.
	EventInvite EventType = "invite"
	// EventAck: the ACK confirming a session the emulator answered.
	EventAck EventType = "ack"
	// EventMessage: a message delivered in a session: an in-dialog MESSAGE
	// answered 200, or the first message embedded in an INVITE
	// (Embedded; only when the 200 carried Supported: ms-text-format).
	EventMessage EventType = "message"
	// EventTyping: INFO with a KeyboardActivity body (State "type"/"idle").
	EventTyping EventType = "info-typing"
	// EventInfo: any other INFO in a session.
	EventInfo EventType = "info"
	// EventBye: the peer ended a session.
	EventBye EventType = "bye"
	// EventCancel: a CANCEL.
	EventCancel EventType = "cancel"
	// EventPager: a pager-mode MESSAGE (outside a dialog) that was
	// accepted (Behaviour.AcceptPager).
	EventPager EventType = "pager"
	// EventPagerRejected: a pager-mode MESSAGE rejected with Status.
	EventPagerRejected EventType = "pager-rejected"
	// EventConfInvite: an INVITE with an ms-conf-invite body (Focus set).
	EventConfInvite EventType = "conf-invite"
	// EventPolicyRejected: a message refused with 606 + Warning: 309.
	EventPolicyRejected EventType = "policy-rejected"
	// EventNoDialog: an in-dialog request for an unknown (or dropped)
	// dialog, answered 481.
	EventNoDialog EventType = "no-dialog"
	// EventUnsupported: a request refused for its content or extensions
	// (415, 420, 488) or for an unknown user (404).
	EventUnsupported EventType = "unsupported"
	// EventOptions: an OPTIONS request.
	EventOptions EventType = "options"
)

// Event is one request the emulator received.
type Event struct {
	Seq  int // 1, 2, … in arrival order across the emulator
	Type EventType
	// User is the local user it was for ("dave"); Peer the remote URI
	// ("sip:alice@xmpp.test").
	User, Peer string
	// DialogID is "Call-ID;local-tag;remote-tag" ("" outside a dialog).
	DialogID       string
	CallID         string
	ConversationID string // Ms-Conversation-ID of the session
	Method         string
	ContentType    string // as received, parameters included
	// Body is the request body; for an INVITE and an embedded first
	// message, the decoded ms-text-format text.
	Body string
	// HTML is the HTML rendering: a text/html body, or an INVITE's
	// ms-im-format text/html.
	HTML     string
	State    string // typing state: "type" or "idle"
	Focus    string // conference focus URI of a conf-invite
	Embedded bool   // the message came inside the INVITE
	Status   int    // the status the emulator answered with
	// Violations are the dialect rules the peer broke in this request
	// (e.g. it sent ms-edge-proxy-message-trust, or changed the route set).
	Violations []string
	// Request is the request as the emulated Lync client saw it: the
	// Edge's ms-edge-proxy-message-trust added, its Route entries consumed.
	Request *sip.Request
	// Raw is the request as it arrived from the federation link.
	Raw string
}

// Header is the first value of the named header of Request ("" if absent;
// names are case-insensitive).
func (e Event) Header(name string) string {
	if e.Request == nil {
		return ""
	}
	if h := e.Request.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Headers are all values of the named header of Request.
func (e Event) Headers(name string) []string {
	if e.Request == nil {
		return nil
	}
	var out []string
	for _, h := range e.Request.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

// Matcher selects events for Wait.
type Matcher interface{ Match(Event) bool }

// MatchFunc is a Matcher from a function.
type MatchFunc func(Event) bool

// Match calls f.
func (f MatchFunc) Match(e Event) bool { return f(e) }

// Want matches an event whose fields equal the non-zero fields of Want.
type Want struct {
	Type     EventType
	User     string
	Peer     string
	DialogID string
	CallID   string
	Body     string
	// BodyContains matches a substring of Body (or of HTML).
	BodyContains string
	// ContentType matches the media type (type/subtype, no parameters).
	ContentType string
	State       string
	Status      int
}

// Match reports whether e has every field w sets.
func (w Want) Match(e Event) bool {
	switch {
	case w.Type != "" && e.Type != w.Type,
		w.User != "" && e.User != w.User,
		w.Peer != "" && e.Peer != w.Peer,
		w.DialogID != "" && e.DialogID != w.DialogID,
		w.CallID != "" && e.CallID != w.CallID,
		w.Body != "" && e.Body != w.Body,
		w.BodyContains != "" && !strings.Contains(e.Body, w.BodyContains) && !strings.Contains(e.HTML, w.BodyContains),
		w.ContentType != "" && mediaType(e.ContentType) != strings.ToLower(w.ContentType),
		w.State != "" && e.State != w.State,
		w.Status != 0 && e.Status != w.Status:
		return false
	}
	return true
}

// Is matches every event of type t.
func Is(t EventType) Matcher { return Want{Type: t} }
