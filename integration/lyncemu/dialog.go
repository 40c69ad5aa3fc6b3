package lyncemu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// User is one emulated Lync user of the domain.
type User struct {
	emu      *Emulator
	name     string
	unknown  bool
	epid     string // endpoint id on From (§1.5)
	opaque   string // GRUU opaque part, "user:epid:…"
	instance string // +sip.instance

	chats []*Chat // guarded by emu.mu
}

func newUser(e *Emulator, name string) *User {
	return &User{emu: e, name: name, epid: newEpid(), opaque: newGruuOpaque(), instance: newInstance()}
}

// ErrUnknownUser is returned by the operations of a user the emulator does
// not serve.
var ErrUnknownUser = errors.New("lyncemu: unknown user")

// Name is the user part ("dave").
func (u *User) Name() string { return u.name }

// URI is "sip:user@domain".
func (u *User) URI() string { return "sip:" + u.name + "@" + u.emu.opts.Domain }

// Epid is the endpoint id the user puts on From.
func (u *User) Epid() string { return u.epid }

func (u *User) aor() sip.Uri { return sip.Uri{Scheme: "sip", User: u.name, Host: u.emu.opts.Domain} }

func (u *User) displayName() string {
	r, n := utf8.DecodeRuneInString(u.name)
	return string(unicode.ToUpper(r)) + u.name[n:]
}

// gruu is the user's GRUU: <sip:dave@lync.test;opaque=user:epid:…;gruu>
// (§1.5, TC samples 01, 15), with the +sip.instance it was minted for.
func (u *User) contact() *sip.ContactHeader {
	a := u.aor()
	a.UriParams = sip.NewParams()
	a.UriParams.Add("opaque", u.opaque)
	a.UriParams.Add("gruu", "")
	c := &sip.ContactHeader{Address: a, Params: sip.NewParams()}
	c.Params.Add("+sip.instance", `"`+u.instance+`"`)
	return c
}

func (u *User) from(tag string) *sip.FromHeader {
	f := &sip.FromHeader{DisplayName: u.displayName(), Address: u.aor(), Params: sip.NewParams()}
	f.Params.Add("tag", tag)
	f.Params.Add("epid", u.epid)
	return f
}

// Wait is Emulator.Wait for this user's events.
func (u *User) Wait(ctx context.Context, m Matcher) (Event, error) {
	return u.emu.Wait(ctx, MatchFunc(func(e Event) bool { return e.User == u.name && (m == nil || m.Match(e)) }))
}

// Session returns the user's most recent open session with peer (either
// direction), or nil.
func (u *User) Session(peer string) *Chat {
	u.emu.mu.Lock()
	defer u.emu.mu.Unlock()
	for i := len(u.chats) - 1; i >= 0; i-- {
		c := u.chats[i]
		if c.peer == peer && c.d != nil && !c.d.closed {
			return c
		}
	}
	return nil
}

// Chats are all the user's sessions so far, open or not.
func (u *User) Chats() []*Chat {
	u.emu.mu.Lock()
	defer u.emu.mu.Unlock()
	return append([]*Chat(nil), u.chats...)
}

// dialog is one IM dialog, either direction, as the emulated client keeps
// it (RFC 3261 §12). Guarded by emu.mu.
type dialog struct {
	user                      *User
	callID                    string
	localTag, remoteTag       string
	remote                    sip.Uri // peer AOR (From/To)
	remoteDisplay, remoteEpid string
	remoteTarget              sip.Uri   // Contact
	routeSet                  []sip.Uri // Route for requests we send
	ours                      routes    // our Record-Route entries
	localCSeq, remoteCSeq     uint32    // last sent / last received
	convID                    string    // Ms-Conversation-ID
	outbound                  bool      // we sent the INVITE
	closed                    bool      // BYE or dropped
	chat                      *Chat     // the session it serves
	invite                    *sip.Request
}

func (d *dialog) id() string { return dialogID(d.callID, d.localTag, d.remoteTag) }

func dialogID(callID, localTag, remoteTag string) string {
	return callID + ";" + localTag + ";" + remoteTag
}

// newRequest builds an in-dialog request as the Lync client sends it
// (samples 06, 07): From with tag and epid, To with the peer's tag (and
// epid when the peer sent one), the route set, CSeq one up. Caller holds
// emu.mu.
func (d *dialog) newRequest(method sip.RequestMethod, userAgent string) *sip.Request {
	req := sip.NewRequest(method, d.remoteTarget)
	d.localCSeq++
	req.AppendHeader(clientVia())
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(d.user.from(d.localTag))
	to := &sip.ToHeader{DisplayName: d.remoteDisplay, Address: d.remote, Params: sip.NewParams()}
	to.Params.Add("tag", d.remoteTag)
	if d.remoteEpid != "" {
		to.Params.Add("epid", d.remoteEpid)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.localCSeq, MethodName: method})
	for _, r := range d.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	req.AppendHeader(sip.NewHeader("User-Agent", userAgent))
	return req
}

// clientVia is the client's own Via (the Front End adds its received
// parameters on the way out). The client sits behind the Front End over
// TLS; its address is the emulator's, never used for routing.
func clientVia() *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS", Params: sip.NewParams()}
	v.Params.Add("branch", newBranch())
	return v
}

// uacRouteSet is the route set of a dialog we opened: the 2xx's
// Record-Route reversed (RFC 3261 §12.1.2), less the entries our own Edge
// and Front End added (they consume them on the way out).
func uacRouteSet(res *sip.Response, ours routes) []sip.Uri {
	var out []sip.Uri
	for _, h := range res.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok && !ours.own(rr.Address) {
			out = append(out, rr.Address)
		}
	}
	slices.Reverse(out)
	return out
}

// uasRouteSet is the route set of a dialog the peer opened: Record-Route
// as received, in order (§12.1.1).
func uasRouteSet(req *sip.Request) []sip.Uri {
	var out []sip.Uri
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, rr.Address)
		}
	}
	return out
}

// StatusError is a final non-2xx answer to a request the emulator sent.
type StatusError struct {
	Method  string
	Code    int
	Reason  string
	Warning string // the Warning header, e.g. `309 … "…"`
	// Diagnostics is ms-diagnostics or ms-diagnostics-public, if any.
	Diagnostics string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("lyncemu: %s answered %d %s", e.Method, e.Code, e.Reason)
	if e.Warning != "" {
		s += " (Warning: " + e.Warning + ")"
	}
	return s
}

func statusError(method sip.RequestMethod, res *sip.Response) *StatusError {
	se := &StatusError{Method: string(method), Code: res.StatusCode, Reason: res.Reason}
	if h := res.GetHeader("Warning"); h != nil {
		se.Warning = h.Value()
	}
	for _, n := range []string{"ms-diagnostics", "ms-diagnostics-public"} {
		if h := res.GetHeader(n); h != nil {
			se.Diagnostics = h.Value()
		}
	}
	return se
}

// StatusCode returns the SIP status of err if it is a *StatusError, else 0.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// epidOf is the epid parameter of a From/To header.
func epidOf(p sip.HeaderParams) string {
	v, _ := p.Get("epid")
	return v
}

func tagOf(p sip.HeaderParams) string {
	v, _ := p.Get("tag")
	return v
}

// bareURI is the AOR of a From/To address (no parameters).
func bareURI(u sip.Uri) sip.Uri {
	return sip.Uri{Scheme: strings.ToLower(u.Scheme), User: u.User, Host: strings.ToLower(u.Host)}
}

// uriString is u's text form.
func uriString(u sip.Uri) string { return u.String() }
