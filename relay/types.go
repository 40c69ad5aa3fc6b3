package relay

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/parleygw/parley/relay/ice"
	"github.com/parleygw/parley/relay/srtpx"
)

// LegID names one of a call's two legs. Which peer is on which leg is the
// owner's choice; Parley puts the SIP side on LegA and the XMPP side on LegB.
type LegID uint8

// The two legs of a call.
const (
	LegA LegID = 0
	LegB LegID = 1
)

func (l LegID) String() string {
	if l == LegA {
		return "a"
	}
	return "b"
}

func (l LegID) other() LegID { return 1 - l }

func (l LegID) valid() bool { return l <= LegB }

// Direction is a peer's own media direction as its description states it
// (RFC 3264 §5.1, XEP-0167 senders): SendOnly means the peer sends and does
// not want to receive. The zero value is SendRecv.
type Direction uint8

// The four directions.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

var directionNames = [...]string{"sendrecv", "sendonly", "recvonly", "inactive"}

func (d Direction) String() string {
	if int(d) < len(directionNames) {
		return directionNames[d]
	}
	return "invalid"
}

// Sends reports whether a peer with this direction sends media.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether a peer with this direction accepts media.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// MarshalText implements encoding.TextMarshaler.
func (d Direction) MarshalText() ([]byte, error) {
	if int(d) >= len(directionNames) {
		return nil, fmt.Errorf("relay: direction %d", d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Direction) UnmarshalText(b []byte) error {
	for i, n := range directionNames {
		if n == string(b) {
			*d = Direction(i)
			return nil
		}
	}
	return fmt.Errorf("relay: unknown direction %q", b)
}

// Codec is one payload type a peer uses (from an rtpmap / <payload-type/>).
type Codec struct {
	PT        uint8  `json:"pt"`
	Name      string `json:"name"`
	ClockRate uint32 `json:"clock_rate"`
	Channels  uint8  `json:"channels,omitempty"` // 0 and 1 are both mono
}

func (c Codec) same(o Codec) bool {
	ch := func(n uint8) uint8 {
		if n == 0 {
			return 1
		}
		return n
	}
	return strings.EqualFold(c.Name, o.Name) && c.ClockRate == o.ClockRate && ch(c.Channels) == ch(o.Channels)
}

// Crypto is a leg's SDES-SRTP (RFC 4568) once negotiated: the suite, the
// peer's master keys (the relay decrypts with them) and the MKI the relay
// puts on what it sends under its own key (LocalDescription.Key); zero
// LocalMKI means none, which is what Parley answers Lync with.
type Crypto struct {
	Suite    srtpx.Suite       `json:"suite"`
	Keys     []srtpx.KeyParams `json:"keys"`
	LocalMKI srtpx.MKI         `json:"local_mki,omitzero"`
}

// RemoteDescription is what one leg's peer said about its media, in
// protocol-neutral terms (the SIP side fills it from SDP, the component
// from Jingle).
type RemoteDescription struct {
	// Addr is where the peer said it receives RTP (c=/m=, or the default
	// candidate). Without ICE the relay sends there until the peer's first
	// packet latches its real source address.
	Addr netip.AddrPort `json:"addr"`
	// RTCPAddr is where it receives RTCP; zero means Addr's port + 1, or
	// Addr itself with RTCPMux.
	RTCPAddr netip.AddrPort `json:"rtcp_addr,omitzero"`
	RTCPMux  bool           `json:"rtcp_mux,omitempty"`
	// ICE, when set, makes the leg an ICE-lite leg: media is accepted only
	// from addresses whose connectivity checks passed and is sent to the
	// nominated one. Nil means symmetric RTP latching.
	ICE *ice.Credentials `json:"ice,omitempty"`
	// Crypto, when set, makes the leg SDES-SRTP; nil means plain RTP.
	Crypto *Crypto `json:"crypto,omitempty"`
	// Codecs are the payload types the peer uses. Payload types are mapped
	// to the other leg's numbers for the same codec; a codec the other leg
	// lacks is dropped. Empty on either leg passes payload types unchanged.
	Codecs []Codec `json:"codecs,omitempty"`
	// Direction is the peer's own direction.
	Direction Direction `json:"direction"`
}

// Candidate is a local ICE candidate to advertise.
type Candidate struct {
	Foundation string         `json:"foundation"`
	Component  int            `json:"component"` // 1 RTP, 2 RTCP
	Priority   uint32         `json:"priority"`
	Addr       netip.AddrPort `json:"addr"`
	Type       string         `json:"type"` // "host"
}

// LocalDescription is what the owner tells a leg's peer about the relay.
type LocalDescription struct {
	// Addr receives RTP (and RTCP with rtcp-mux); RTCPAddr receives RTCP
	// otherwise. Both carry the advertised (public) address.
	Addr     netip.AddrPort `json:"addr"`
	RTCPAddr netip.AddrPort `json:"rtcp_addr"`
	// ICE are the relay's credentials on this leg; the relay is an ICE-lite
	// agent (a=ice-lite), so Candidates are host candidates only.
	ICE        ice.Credentials `json:"ice"`
	Candidates []Candidate     `json:"candidates"`
	// Key is the relay's SDES master key for this leg (what the owner puts in
	// its a=crypto / <crypto/> with the peer's tag and the chosen suite).
	Key srtpx.KeyParams `json:"key"`
	// Dedicated says the leg has ports of its own (AllocateOptions).
	Dedicated bool `json:"dedicated,omitempty"`
}

// LegOptions shape one leg at allocation. The zero value puts it on the
// relay's shared ports.
type LegOptions struct {
	// DedicatedPorts gives the leg an RTP/RTCP port pair of its own, for a
	// plain-RTP SIP peer (no ICE) whose media could not be told apart from
	// another's by source address on a shared port (several calls behind
	// one NAT or media server).
	DedicatedPorts bool `json:"dedicated_ports,omitempty"`
}

// AllocateOptions shape a call at allocation; the zero value is two legs on
// shared ports.
type AllocateOptions struct {
	Legs [2]LegOptions `json:"legs"`
}

// Update changes a leg without a new description (hold and resume when the
// signalling carries only a direction, as Jingle's session-info does).
type Update struct {
	Direction Direction `json:"direction"`
}

// Allocation is the record of a call the relay serves: what the Store keeps
// so the call's owner, and a restarted relay, know about it.
type Allocation struct {
	CallID   string              `json:"call_id"`
	Owner    string              `json:"owner"`
	Instance string              `json:"instance,omitempty"`
	Legs     [2]LocalDescription `json:"legs"`
	Created  time.Time           `json:"created"`
}

// EventType says what happened.
type EventType uint8

// Events the relay raises towards a call's owner.
const (
	// EventTimeout: a leg expected to send has sent no valid media for the
	// RTP timeout. The owner ends the call on both sides and releases it.
	EventTimeout EventType = iota + 1
	// EventConsentLost: an ICE leg's peer stopped sending connectivity
	// checks for the consent timeout (RFC 7675); the relay stopped sending
	// to it. The owner ends the call.
	EventConsentLost
	// EventReleased: the relay released the call on its own (shutdown).
	EventReleased
)

var eventNames = map[EventType]string{EventTimeout: "rtp-timeout", EventConsentLost: "consent-lost", EventReleased: "released"}

func (e EventType) String() string {
	if n, ok := eventNames[e]; ok {
		return n
	}
	return "unknown"
}

// MarshalJSON writes the event type by name.
func (e EventType) MarshalJSON() ([]byte, error) { return json.Marshal(e.String()) }

// Event is something the owner of a call must act on.
type Event struct {
	Type   EventType `json:"type"`
	CallID string    `json:"call_id"`
	Owner  string    `json:"owner"`
	Leg    LegID     `json:"leg"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}
