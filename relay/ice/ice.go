// Package ice is the relay's ICE-lite side (RFC 8445 §2.5): short-term
// credentials, and a responder that verifies connectivity checks (STUN
// Binding requests with USERNAME, MESSAGE-INTEGRITY, FINGERPRINT,
// PRIORITY, USE-CANDIDATE) and answers them, plus consent freshness
// tracking (RFC 7675) for the pairs it validated. A lite agent is always
// the controlled agent and never sends checks of its own.
//
// It must not know about sockets, legs, SDP or Jingle: the relay asks it
// which local ufrag a packet is for, looks the leg up itself, and hands the
// packet to that leg's Responder.
package ice

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/stun"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotSTUN        = errors.New("ice: not a STUN message")
	ErrNotRequest     = errors.New("ice: not a Binding request")
	ErrBadRequest     = errors.New("ice: check lacks USERNAME or MESSAGE-INTEGRITY")
	ErrUsername       = errors.New("ice: USERNAME is not for this agent")
	ErrIntegrity      = errors.New("ice: MESSAGE-INTEGRITY check failed")
	ErrFingerprint    = errors.New("ice: FINGERPRINT check failed")
	ErrRoleConflict   = errors.New("ice: peer claims the controlled role too")
	ErrCredentials    = errors.New("ice: ufrag must be 4..256 and pwd 22..256 ICE characters")
	errShortOutBuffer = errors.New("ice: response buffer too small")
)

// magicCookie is the fixed STUN cookie (RFC 8489 §5).
const magicCookie = 0x2112A442

// iceChars is the ICE character set (RFC 8445 §5.3: ALPHA / DIGIT / "+" / "/").
const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// Credentials are one agent's short-term ICE credentials.
type Credentials struct {
	Ufrag string `json:"ufrag"`
	Pwd   string `json:"pwd"`
}

// NewCredentials makes fresh random credentials: an 8-character ufrag (48
// bits) and a 24-character password (144 bits, above RFC 8445's 128).
func NewCredentials() (Credentials, error) {
	u, err := randomICEString(8)
	if err != nil {
		return Credentials{}, err
	}
	p, err := randomICEString(24)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Ufrag: u, Pwd: p}, nil
}

func randomICEString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ice: random: %w", err)
	}
	for i := range b {
		b[i] = iceChars[b[i]&63]
	}
	return string(b), nil
}

// Validate checks the lengths and characters RFC 8445 §5.3 requires.
func (c Credentials) Validate() error {
	ok := func(s string, min int) bool {
		if len(s) < min || len(s) > 256 {
			return false
		}
		for i := 0; i < len(s); i++ {
			if strings.IndexByte(iceChars, s[i]) < 0 {
				return false
			}
		}
		return true
	}
	if !ok(c.Ufrag, 4) || !ok(c.Pwd, 22) {
		return ErrCredentials
	}
	return nil
}

// IsSTUN reports whether b looks like a STUN message: first two bits zero,
// the magic cookie, a length that fits (RFC 8489 §5, RFC 7983).
func IsSTUN(b []byte) bool {
	return len(b) >= 20 && b[0] < 4 && binary.BigEndian.Uint32(b[4:]) == magicCookie &&
		int(binary.BigEndian.Uint16(b[2:]))+20 == len(b)
}

// LocalUfrag returns the part of a Binding request's USERNAME before the
// colon: the ufrag of the agent the check is for. It allocates nothing and
// verifies nothing; the caller uses it to pick the leg whose Responder then
// checks the message.
func LocalUfrag(b []byte) ([]byte, bool) {
	if !IsSTUN(b) || binary.BigEndian.Uint16(b[0:]) != 0x0001 {
		return nil, false
	}
	for off := 20; off+4 <= len(b); {
		t := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		v := off + 4
		if v+l > len(b) {
			return nil, false
		}
		if t == uint16(stun.AttrUsername) {
			u := b[v : v+l]
			if i := bytes.IndexByte(u, ':'); i > 0 {
				return u[:i], true
			}
			return nil, false
		}
		off = v + (l+3)&^3
	}
	return nil, false
}

// Check is a verified connectivity check.
type Check struct {
	// RemoteUfrag is the peer's ufrag from USERNAME (after the colon).
	RemoteUfrag string
	// UseCandidate: the controlling peer nominated this pair.
	UseCandidate bool
	// Priority is the peer's PRIORITY for the prflx candidate it would learn.
	Priority uint32
	// Source is where the check came from: the remote side of the pair.
	Source netip.AddrPort
}

// Responder answers connectivity checks for one agent (one leg), as the
// controlled ICE-lite side. Its zero Remote accepts checks before the peer's
// own ufrag is known (checks may outrun the answer).
type Responder struct {
	Local  Credentials
	Remote Credentials
	// Software, when set, is sent in a SOFTWARE attribute.
	Software string
}

// Handle verifies the STUN message req that arrived from src. For a valid
// Binding request it returns a Binding success response (XOR-MAPPED-ADDRESS,
// MESSAGE-INTEGRITY, FINGERPRINT) written into out, and the Check. For a
// request it must refuse it returns an error response (400, 401 or 487) in
// resp and the reason in err. For anything it must not answer (not STUN, an
// indication, a response) resp is nil.
func (r *Responder) Handle(req []byte, src netip.AddrPort, out []byte) (resp []byte, c Check, err error) {
	if !IsSTUN(req) {
		return nil, c, ErrNotSTUN
	}
	m := &stun.Message{Raw: append([]byte(nil), req...)}
	if err := m.Decode(); err != nil {
		return nil, c, fmt.Errorf("%w: %v", ErrNotSTUN, err)
	}
	if m.Type != stun.BindingRequest {
		return nil, c, ErrNotRequest
	}
	c.Source = src
	var user stun.Username
	if err := user.GetFrom(m); err != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return r.errorResponse(m, stun.CodeBadRequest, false, out), c, ErrBadRequest
	}
	lf, rf, ok := bytes.Cut(user, []byte{':'})
	if !ok || string(lf) != r.Local.Ufrag || (r.Remote.Ufrag != "" && string(rf) != r.Remote.Ufrag) {
		return r.errorResponse(m, stun.CodeUnauthorized, false, out), c, ErrUsername
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			// A bad FINGERPRINT means it is not STUN after all: drop it.
			return nil, c, ErrFingerprint
		}
	}
	if err := stun.NewShortTermIntegrity(r.Local.Pwd).Check(m); err != nil {
		return r.errorResponse(m, stun.CodeUnauthorized, false, out), c, ErrIntegrity
	}
	c.RemoteUfrag = string(rf)
	c.UseCandidate = m.Contains(stun.AttrUseCandidate)
	if p, err := m.Get(stun.AttrPriority); err == nil && len(p) == 4 {
		c.Priority = binary.BigEndian.Uint32(p)
	}
	if m.Contains(stun.AttrICEControlled) {
		// Both sides controlled: a lite agent cannot switch roles, so the
		// peer has to (RFC 8445 §7.3.1.1).
		return r.errorResponse(m, stun.CodeRoleConflict, true, out), c, ErrRoleConflict
	}
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IP(src.Addr().Unmap().AsSlice()), Port: int(src.Port())},
	}
	if r.Software != "" {
		setters = append(setters, stun.NewSoftware(r.Software))
	}
	setters = append(setters, stun.NewShortTermIntegrity(r.Local.Pwd), stun.Fingerprint)
	resp, err = build(out, setters...)
	if err != nil {
		return nil, c, err
	}
	return resp, c, nil
}

func (r *Responder) errorResponse(req *stun.Message, code stun.ErrorCode, integrity bool, out []byte) []byte {
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.NewType(stun.MethodBinding, stun.ClassErrorResponse),
		code,
	}
	if integrity {
		setters = append(setters, stun.NewShortTermIntegrity(r.Local.Pwd))
	}
	setters = append(setters, stun.Fingerprint)
	b, err := build(out, setters...)
	if err != nil {
		return nil
	}
	return b
}

func build(out []byte, setters ...stun.Setter) ([]byte, error) {
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, fmt.Errorf("ice: building response: %w", err)
	}
	if len(out) < len(m.Raw) {
		return nil, errShortOutBuffer
	}
	return out[:copy(out, m.Raw)], nil
}

// Consent tracks RFC 7675 consent freshness from the relay's side: a lite
// agent cannot send consent requests of its own, so it holds consent for as
// long as the peer keeps sending valid checks (browsers and pion send one
// every ~5 s). Its zero value has no consent.
type Consent struct {
	// Timeout is how long consent lasts after the last valid check; 0 means
	// RFC 7675's 30 s.
	Timeout time.Duration
	last    time.Time
}

// Refresh records a valid check at now.
func (c *Consent) Refresh(now time.Time) { c.last = now }

// Granted reports whether consent still holds at now.
func (c *Consent) Granted(now time.Time) bool {
	t := c.Timeout
	if t == 0 {
		t = 30 * time.Second
	}
	return !c.last.IsZero() && now.Sub(c.last) < t
}

// Last is the time of the last valid check (zero: none yet).
func (c *Consent) Last() time.Time { return c.last }
