// Package rtpx reads and rewrites RTP and RTCP headers in place, for the
// media relay's packet path: demultiplexing by first byte (RFC 7983) and
// payload type (RFC 5761), payload-type mapping between two legs that
// numbered the same codec differently (telephone-event included), and
// sequence continuity when the relay drops a packet on purpose. Nothing in
// this package allocates per packet.
//
// It must not know about sockets, calls, SRTP keys, SDP or Jingle.
package rtpx

import (
	"encoding/binary"
	"errors"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrShortPacket  = errors.New("rtpx: packet too short")
	ErrVersion      = errors.New("rtpx: not RTP/RTCP version 2")
	ErrHeaderLength = errors.New("rtpx: header longer than packet")
	ErrPadding      = errors.New("rtpx: bad padding")
	ErrRTCPLength   = errors.New("rtpx: RTCP length does not match packet")
	ErrBufferSize   = errors.New("rtpx: buffer too small")
	ErrTooManyCSRC  = errors.New("rtpx: more than 15 CSRCs")
)

// FixedHeaderSize is the size of the RTP header without CSRCs or extension.
const FixedHeaderSize = 12

// Kind is what a datagram on a media port carries, told apart by its first
// bytes as RFC 7983 and RFC 5761 §4 describe.
type Kind uint8

// The kinds of datagram a relay port receives.
const (
	KindUnknown Kind = iota
	KindSTUN         // first byte 0..3
	KindDTLS         // first byte 20..63
	KindRTP          // first byte 128..191, second byte's payload type not 64..95
	KindRTCP         // first byte 128..191, packet type 192..223
)

var kindNames = [...]string{"unknown", "stun", "dtls", "rtp", "rtcp"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Classify tells what b is from its first two bytes.
func Classify(b []byte) Kind {
	if len(b) == 0 {
		return KindUnknown
	}
	switch c := b[0]; {
	case c <= 3:
		return KindSTUN
	case c >= 20 && c <= 63:
		return KindDTLS
	case c >= 128 && c <= 191:
		if len(b) < 2 {
			return KindUnknown
		}
		if IsRTCPType(b[1]) {
			return KindRTCP
		}
		return KindRTP
	}
	return KindUnknown
}

// IsRTCPType reports whether the second byte of a packet is an RTCP packet
// type in the range RFC 5761 §4 reserves for RTCP on a muxed port (192..223);
// RTP payload types 64..95 would collide and are never negotiated there.
func IsRTCPType(b1 byte) bool { return b1 >= 192 && b1 <= 223 }

// Header is an RTP header (RFC 3550 §5.1). Unmarshal fills it without
// allocating: CSRCs go into a fixed array and Extension aliases the packet.
type Header struct {
	Padding        bool
	Marker         bool
	PayloadType    uint8
	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	CSRCCount      uint8
	CSRC           [15]uint32
	// HasExtension says an extension follows the CSRCs; ExtensionProfile is
	// its 16-bit profile and Extension its body (a multiple of 4 bytes).
	HasExtension     bool
	ExtensionProfile uint16
	Extension        []byte
}

// Unmarshal parses the header at the start of b and returns its length
// (fixed part, CSRCs and extension).
func (h *Header) Unmarshal(b []byte) (int, error) {
	if len(b) < FixedHeaderSize {
		return 0, ErrShortPacket
	}
	if b[0]>>6 != 2 {
		return 0, ErrVersion
	}
	h.Padding = b[0]&0x20 != 0
	h.HasExtension = b[0]&0x10 != 0
	h.CSRCCount = b[0] & 0x0f
	h.Marker = b[1]&0x80 != 0
	h.PayloadType = b[1] & 0x7f
	h.SequenceNumber = binary.BigEndian.Uint16(b[2:])
	h.Timestamp = binary.BigEndian.Uint32(b[4:])
	h.SSRC = binary.BigEndian.Uint32(b[8:])
	n := FixedHeaderSize + 4*int(h.CSRCCount)
	if len(b) < n {
		return 0, ErrHeaderLength
	}
	for i := 0; i < int(h.CSRCCount); i++ {
		h.CSRC[i] = binary.BigEndian.Uint32(b[FixedHeaderSize+4*i:])
	}
	h.ExtensionProfile, h.Extension = 0, nil
	if h.HasExtension {
		if len(b) < n+4 {
			return 0, ErrHeaderLength
		}
		h.ExtensionProfile = binary.BigEndian.Uint16(b[n:])
		words := int(binary.BigEndian.Uint16(b[n+2:]))
		n += 4
		if len(b) < n+4*words {
			return 0, ErrHeaderLength
		}
		h.Extension = b[n : n+4*words : n+4*words]
		n += 4 * words
	}
	return n, nil
}

// MarshalSize is the number of bytes MarshalTo writes.
func (h *Header) MarshalSize() int {
	n := FixedHeaderSize + 4*int(h.CSRCCount)
	if h.HasExtension {
		n += 4 + len(h.Extension)
	}
	return n
}

// MarshalTo writes the header into b and returns its length.
func (h *Header) MarshalTo(b []byte) (int, error) {
	if h.CSRCCount > 15 {
		return 0, ErrTooManyCSRC
	}
	if h.HasExtension && (len(h.Extension)%4 != 0 || len(h.Extension) > 4*0xffff) {
		return 0, ErrHeaderLength
	}
	n := h.MarshalSize()
	if len(b) < n {
		return 0, ErrBufferSize
	}
	b[0] = 2<<6 | h.CSRCCount
	if h.Padding {
		b[0] |= 0x20
	}
	if h.HasExtension {
		b[0] |= 0x10
	}
	b[1] = h.PayloadType & 0x7f
	if h.Marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], h.SequenceNumber)
	binary.BigEndian.PutUint32(b[4:], h.Timestamp)
	binary.BigEndian.PutUint32(b[8:], h.SSRC)
	off := FixedHeaderSize
	for i := 0; i < int(h.CSRCCount); i++ {
		binary.BigEndian.PutUint32(b[off:], h.CSRC[i])
		off += 4
	}
	if h.HasExtension {
		binary.BigEndian.PutUint16(b[off:], h.ExtensionProfile)
		binary.BigEndian.PutUint16(b[off+2:], uint16(len(h.Extension)/4))
		off += 4
		off += copy(b[off:], h.Extension)
	}
	return off, nil
}

// PayloadLen returns the length of the payload of the RTP packet b whose
// header is hdrLen bytes long, without padding.
func PayloadLen(b []byte, hdrLen int) (int, error) {
	if len(b) < FixedHeaderSize {
		return 0, ErrShortPacket
	}
	if hdrLen < FixedHeaderSize || hdrLen > len(b) {
		return 0, ErrHeaderLength
	}
	n := len(b) - hdrLen
	if b[0]&0x20 != 0 {
		if n == 0 {
			return 0, ErrPadding
		}
		p := int(b[len(b)-1])
		if p == 0 || p > n {
			return 0, ErrPadding
		}
		n -= p
	}
	return n, nil
}

// Fields reads the few RTP header fields the relay's packet path needs,
// checking only the fixed header; it is cheaper than Unmarshal.
func Fields(b []byte) (pt uint8, seq uint16, ssrc uint32, err error) {
	if len(b) < FixedHeaderSize {
		return 0, 0, 0, ErrShortPacket
	}
	if b[0]>>6 != 2 {
		return 0, 0, 0, ErrVersion
	}
	return b[1] & 0x7f, binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[8:]), nil
}

// RTCPSSRC returns the sender SSRC of the first packet of an RTCP compound
// packet, after checking that the compound's length fields add up to
// exactly len(b) (RFC 3550 §6.4 / A.2 validity checks, without the
// first-packet-type rule, which RFC 5506 reduced-size RTCP relaxes).
func RTCPSSRC(b []byte) (uint32, error) {
	if err := ValidateRTCP(b); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[4:]), nil
}

// ValidateRTCP checks an RTCP compound packet: version 2 in every part, each
// part's length inside the packet, the parts filling it exactly.
func ValidateRTCP(b []byte) error {
	if len(b) < 8 {
		return ErrShortPacket
	}
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return ErrRTCPLength
		}
		if b[off]>>6 != 2 {
			return ErrVersion
		}
		n := 4 * (int(binary.BigEndian.Uint16(b[off+2:])) + 1)
		if n > len(b)-off {
			return ErrRTCPLength
		}
		off += n
	}
	return nil
}
