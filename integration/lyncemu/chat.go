package lyncemu

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Chat is one IM conversation of a user with a peer: an INVITE session
// (either side may have opened it), re-opened with a new INVITE when it
// is gone and the user writes again, as Lync does.
type Chat struct {
	user   *User
	peer   string // peer AOR, "sip:alice@xmpp.test"
	target sip.Uri
	convID string
	extra  []sip.Header

	sendMu sync.Mutex // one request at a time, as a client sends them

	// guarded by user.emu.mu
	d           *dialog
	invite      *sip.Request
	answer      *sip.Response
	firstResent bool
	reopened    int
}

// ChatOption adjusts User.Chat.
type ChatOption func(*chatConfig)

type chatConfig struct {
	first     *firstMessage
	convID    string
	headers   []sip.Header
	noHeaders []string
}

type firstMessage struct {
	contentType string // ctPlain or ctHTML
	body        string
}

// First embeds the first message (plain text) in the INVITE, as
// ms-text-format (§2.1).
func First(text string) ChatOption {
	return func(c *chatConfig) { c.first = &firstMessage{contentType: ctPlain, body: text} }
}

// FirstHTML embeds an HTML first message: ms-text-format carries its text
// rendering, ms-im-format the HTML (TC sample 01).
func FirstHTML(html string) ChatOption {
	return func(c *chatConfig) { c.first = &firstMessage{contentType: ctHTML, body: html} }
}

// WithConversationID sets Ms-Conversation-ID (default: a fresh one).
func WithConversationID(id string) ChatOption { return func(c *chatConfig) { c.convID = id } }

// WithHeader adds a header to the INVITE (and to re-INVITEs of the chat).
func WithHeader(name, value string) ChatOption {
	return func(c *chatConfig) { c.headers = append(c.headers, sip.NewHeader(name, value)) }
}

// WithoutHeader leaves a header out of the INVITE (to test how a peer
// copes with a less complete Lync).
func WithoutHeader(name string) ChatOption {
	return func(c *chatConfig) { c.noHeaders = append(c.noHeaders, name) }
}

// Chat opens an IM session with peer ("sip:alice@xmpp.test") as Lync
// does: an INVITE with m=message SDP, Ms-Conversation-ID, the SfB option
// tags and, with First/FirstHTML, the first message in ms-text-format. It
// returns once the session is set up (200, ACK) and, if the 200 lacked
// Supported: ms-text-format, the first message was sent again in the
// session. A non-2xx answer is a *StatusError.
func (u *User) Chat(ctx context.Context, peer string, opts ...ChatOption) (*Chat, error) {
	if u.unknown {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, u.name)
	}
	var target sip.Uri
	if err := sip.ParseUri(peer, &target); err != nil {
		return nil, fmt.Errorf("lyncemu: peer %q: %w", peer, err)
	}
	cfg := &chatConfig{}
	for _, o := range opts {
		o(cfg)
	}
	c := &Chat{user: u, peer: uriString(bareURI(target)), target: target, convID: cfg.convID}
	if c.convID == "" {
		c.convID = newConversationID()
	}
	c.extra = cfg.headers
	if err := c.open(ctx, cfg.first, cfg.noHeaders); err != nil {
		return nil, err
	}
	u.emu.mu.Lock()
	u.chats = append(u.chats, c)
	u.emu.mu.Unlock()
	return c, nil
}

// buildInvite is the client's IM INVITE, in the header order of TC
// sample 01 and SIPE (sample 08).
func (c *Chat) buildInvite(callID, tag string, first *firstMessage, omit []string) *sip.Request {
	u, e := c.user, c.user.emu
	req := sip.NewRequest(sip.INVITE, c.target)
	req.AppendHeader(clientVia())
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(u.from(tag))
	req.AppendHeader(&sip.ToHeader{Address: bareURI(c.target), Params: sip.NewParams()})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(u.contact())
	req.AppendHeader(sip.NewHeader("User-Agent", e.opts.UserAgent))
	req.AppendHeader(sip.NewHeader("Supported", inviteSupported[0]))
	if first != nil {
		text := first.body
		if first.contentType == ctHTML {
			text = htmlToText(first.body)
		}
		req.AppendHeader(sip.NewHeader("ms-text-format", EncodeTextFormat("text/plain", text)))
		if first.contentType == ctHTML {
			req.AppendHeader(sip.NewHeader("ms-im-format", EncodeTextFormat("text/html", first.body)))
		}
	}
	for _, t := range inviteSupported[1:] {
		req.AppendHeader(sip.NewHeader("Supported", t))
	}
	req.AppendHeader(sip.NewHeader("Ms-Conversation-ID", c.convID))
	req.AppendHeader(sip.NewHeader("Roster-Manager", u.URI()))
	req.AppendHeader(sip.NewHeader("EndPoints", "<"+u.URI()+">, <"+c.peer+">"))
	req.AppendHeader(sip.NewHeader("ms-keep-alive", keepAliveUAC))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	for _, h := range c.extra {
		req.AppendHeader(h)
	}
	for _, name := range omit {
		removeAll(req, name)
	}
	ct := sip.ContentTypeHeader(ctSDP)
	req.AppendHeader(&ct)
	req.SetBody([]byte(messageSDP(e.ip.String(), 5060, "null")))
	return req
}

// open sends an INVITE for a new dialog of c and sets it up.
func (c *Chat) open(ctx context.Context, first *firstMessage, omit []string) error {
	u, e := c.user, c.user.emu
	callID, tag := newCallID(), newTag()
	rs := e.edge.newRoutes()
	req := c.buildInvite(callID, tag, first, omit)
	sent := req.Clone()
	res, err := e.do(ctx, req, &rs)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return statusError(sip.INVITE, res)
	}
	to := res.To()
	if to == nil || tagOf(to.Params) == "" {
		return fmt.Errorf("lyncemu: 2xx to INVITE without To tag (call %s)", callID)
	}
	d := &dialog{
		user: u, callID: callID, localTag: tag, remoteTag: tagOf(to.Params),
		remote: bareURI(c.target), remoteDisplay: to.DisplayName, remoteEpid: epidOf(to.Params),
		remoteTarget: c.target, routeSet: uacRouteSet(res, rs), ours: rs,
		localCSeq: 1, convID: c.convID, outbound: true, chat: c, invite: sent,
	}
	if ct := res.Contact(); ct != nil {
		d.remoteTarget = ct.Address
	} else {
		e.violate(fmt.Sprintf("2xx to INVITE (call %s) without Contact", callID))
	}
	if media, _, ok := parseMessageSDP(string(res.Body())); !ok || media != "message" {
		e.violate(fmt.Sprintf("2xx to IM INVITE (call %s) without an m=message answer", callID))
	}
	e.mu.Lock()
	e.dialogs[d.id()] = d
	c.d, c.invite, c.answer = d, sent, res
	e.mu.Unlock()
	if err := e.ack(d, 1); err != nil {
		return err
	}
	// The callee took the embedded message only if it says so (§2.1,
	// SIPE process_invite_response()); otherwise send it in the session.
	if first != nil && !hasTag(res, "ms-text-format") {
		if err := c.message(ctx, d, first.contentType, first.body); err != nil {
			return fmt.Errorf("lyncemu: re-sending the first message: %w", err)
		}
		e.mu.Lock()
		c.firstResent = true
		e.mu.Unlock()
	}
	return nil
}

// hasTag reports whether a Supported header of m lists tag.
func hasTag(m interface{ GetHeaders(string) []sip.Header }, tag string) bool {
	var vals []string
	for _, h := range m.GetHeaders("Supported") {
		vals = append(vals, h.Value())
	}
	for _, t := range splitTags(vals) {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// message sends one MESSAGE in d.
func (c *Chat) message(ctx context.Context, d *dialog, contentType, body string) error {
	res, err := c.user.emu.inDialog(ctx, d, sip.MESSAGE, contentType, body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return statusError(sip.MESSAGE, res)
	}
	return nil
}

func (c *Chat) current() *dialog {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	if c.d == nil || c.d.closed {
		return nil
	}
	return c.d
}

// Send sends a plain-text message (text/plain; charset=UTF-8).
func (c *Chat) Send(ctx context.Context, text string) error { return c.send(ctx, ctPlain, text) }

// SendHTML sends an HTML message (text/html; charset=UTF-8).
func (c *Chat) SendHTML(ctx context.Context, html string) error { return c.send(ctx, ctHTML, html) }

// send delivers a message as Lync does: in the open session; if there is
// none (the peer said BYE, or it was dropped), in a new INVITE; and on a
// 408/480/481 answer (a dangling session), BYE, then a new INVITE carrying
// the message (§2.2, §7 item 8) unless Behaviour.NoReinvite.
func (c *Chat) send(ctx context.Context, contentType, body string) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	d := c.current()
	if d == nil {
		return c.reopen(ctx, contentType, body)
	}
	err := c.message(ctx, d, contentType, body)
	switch StatusCode(err) {
	case 408, 480, 481:
		if c.user.emu.currentBehaviour().NoReinvite {
			return err
		}
		_, _ = c.user.emu.inDialog(ctx, d, sip.BYE, "", "") // best effort: the peer may not know it
		c.forget(d)
		return c.reopen(ctx, contentType, body)
	}
	return err
}

func (c *Chat) reopen(ctx context.Context, contentType, body string) error {
	c.user.emu.mu.Lock()
	c.reopened++
	c.user.emu.mu.Unlock()
	return c.open(ctx, &firstMessage{contentType: contentType, body: body}, nil)
}

// Typing sends INFO with KeyboardActivity status "type" (§2.3). It needs
// an open session: Lync does not INVITE for typing.
func (c *Chat) Typing(ctx context.Context) error { return c.keyboard(ctx, "type") }

// Idle sends INFO with KeyboardActivity status "idle".
func (c *Chat) Idle(ctx context.Context) error { return c.keyboard(ctx, "idle") }

func (c *Chat) keyboard(ctx context.Context, status string) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	d := c.current()
	if d == nil {
		return ErrNoSession
	}
	res, err := c.user.emu.inDialog(ctx, d, sip.INFO, ctXML, keyboardActivity(status))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return statusError(sip.INFO, res)
	}
	return nil
}

// Bye ends the session (BYE); the chat re-opens on the next Send.
func (c *Chat) Bye(ctx context.Context) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	d := c.current()
	if d == nil {
		return ErrNoSession
	}
	res, err := c.user.emu.inDialog(ctx, d, sip.BYE, "", "")
	c.forget(d)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return statusError(sip.BYE, res)
	}
	return nil
}

// forget closes d and removes it from the emulator's dialogs.
func (c *Chat) forget(d *dialog) {
	e := c.user.emu
	e.mu.Lock()
	d.closed = true
	delete(e.dialogs, d.id())
	e.mu.Unlock()
}

// Drop forgets the session without BYE: the peer's next request in it
// gets 481 (as after a client crash or Front End failover).
func (c *Chat) Drop() {
	e := c.user.emu
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.d != nil {
		c.d.closed = true
		delete(e.dialogs, c.d.id())
	}
}

// Open reports whether the chat has an open session.
func (c *Chat) Open() bool { return c.current() != nil }

// Peer is the peer's AOR.
func (c *Chat) Peer() string { return c.peer }

// User is the local user.
func (c *Chat) User() *User { return c.user }

// ConversationID is the chat's Ms-Conversation-ID.
func (c *Chat) ConversationID() string { return c.convID }

// DialogID is the current (or last) dialog's "Call-ID;local-tag;remote-tag".
func (c *Chat) DialogID() string {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	if c.d == nil {
		return ""
	}
	return c.d.id()
}

// CallID is the current (or last) dialog's Call-ID.
func (c *Chat) CallID() string {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	if c.d == nil {
		return ""
	}
	return c.d.callID
}

// Invite is the last INVITE of the chat: as sent (before the Edge added
// its Vias and Record-Route) when the emulator opened it, as received
// when the peer did.
func (c *Chat) Invite() *sip.Request {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	return c.invite
}

// Answer is the 2xx to the last INVITE the emulator sent (nil when the
// peer opened the session).
func (c *Chat) Answer() *sip.Response {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	return c.answer
}

// FirstResent reports whether the first message had to be sent again in
// the session because the 2xx lacked Supported: ms-text-format.
func (c *Chat) FirstResent() bool {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	return c.firstResent
}

// Reopened counts the new INVITEs sent after the session was gone.
func (c *Chat) Reopened() int {
	c.user.emu.mu.Lock()
	defer c.user.emu.mu.Unlock()
	return c.reopened
}

// InviteToConference invites peer to an MCU conference as Lync 2010+ does
// when a chat escalates (§2.5): an INVITE with an ms-conf-invite body
// naming focusURI. It returns the final answer (Parley declines with 488
// or 603). A 2xx is acknowledged and the dialog ended at once: the
// emulator hosts no focus.
func (u *User) InviteToConference(ctx context.Context, peer, focusURI string, opts ...ChatOption) (*sip.Response, error) {
	if u.unknown {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, u.name)
	}
	var target sip.Uri
	if err := sip.ParseUri(peer, &target); err != nil {
		return nil, fmt.Errorf("lyncemu: peer %q: %w", peer, err)
	}
	cfg := &chatConfig{}
	for _, o := range opts {
		o(cfg)
	}
	e := u.emu
	c := &Chat{user: u, peer: uriString(bareURI(target)), target: target, convID: cfg.convID, extra: cfg.headers}
	if c.convID == "" {
		c.convID = newConversationID()
	}
	callID, tag := newCallID(), newTag()
	rs := e.edge.newRoutes()
	req := c.buildInvite(callID, tag, nil, cfg.noHeaders)
	ct := sip.ContentTypeHeader(ctConfInvite)
	req.ReplaceHeader(&ct)
	req.SetBody([]byte(confInviteBody(focusURI, "Conversation")))
	res, err := e.do(ctx, req, &rs)
	if err != nil || res.StatusCode >= 300 {
		return res, err
	}
	d := &dialog{
		user: u, callID: callID, localTag: tag, remoteTag: tagOf(res.To().Params),
		remote: bareURI(target), remoteTarget: target, routeSet: uacRouteSet(res, rs), ours: rs,
		localCSeq: 1, convID: c.convID, outbound: true, chat: c,
	}
	if ct := res.Contact(); ct != nil {
		d.remoteTarget = ct.Address
	}
	if err := e.ack(d, 1); err != nil {
		return res, err
	}
	_, err = e.inDialog(ctx, d, sip.BYE, "", "")
	return res, err
}
