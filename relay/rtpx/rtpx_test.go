package rtpx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func packet(pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	b := make([]byte, FixedHeaderSize, FixedHeaderSize+len(payload))
	b[0] = 0x80
	b[1] = pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return append(b, payload...)
}

func TestClassify(t *testing.T) {
	cases := []struct {
		b    []byte
		want Kind
	}{
		{nil, KindUnknown},
		{[]byte{0x00, 0x01}, KindSTUN},
		{[]byte{0x01, 0x01}, KindSTUN},
		{[]byte{22, 0xfe}, KindDTLS},
		{[]byte{0x80, 0}, KindRTP},
		{[]byte{0x80, 0x80 | 101}, KindRTP},
		{[]byte{0x80, 200}, KindRTCP},
		{[]byte{0x81, 201}, KindRTCP},
		{[]byte{0x80}, KindUnknown},
		{[]byte{0x40, 0}, KindUnknown},
		{[]byte{0xff, 0}, KindUnknown},
	}
	for _, c := range cases {
		if got := Classify(c.b); got != c.want {
			t.Errorf("Classify(% x) = %v, want %v", c.b, got, c.want)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{
		Marker: true, PayloadType: 101, SequenceNumber: 65535, Timestamp: 0xdeadbeef,
		SSRC: 0x01020304, CSRCCount: 2, HasExtension: true, ExtensionProfile: 0xbede,
		Extension: []byte{0x10, 0xaa, 0, 0},
	}
	h.CSRC[0], h.CSRC[1] = 7, 8
	buf := make([]byte, h.MarshalSize())
	n, err := h.MarshalTo(buf)
	if err != nil || n != len(buf) {
		t.Fatalf("MarshalTo = %d, %v", n, err)
	}
	var got Header
	m, err := got.Unmarshal(append(buf, 1, 2, 3))
	if err != nil || m != n {
		t.Fatalf("Unmarshal = %d, %v", m, err)
	}
	if got.SSRC != h.SSRC || got.SequenceNumber != h.SequenceNumber || got.PayloadType != h.PayloadType ||
		!got.Marker || got.CSRC != h.CSRC || !bytes.Equal(got.Extension, h.Extension) || got.ExtensionProfile != 0xbede {
		t.Fatalf("round trip: got %+v want %+v", got, h)
	}
	// pion/rtp agrees on what we wrote.
	var ph rtp.Header
	if _, err := ph.Unmarshal(buf); err != nil {
		t.Fatal(err)
	}
	if ph.SSRC != h.SSRC || ph.PayloadType != h.PayloadType || len(ph.CSRC) != 2 || ph.ExtensionProfile != 0xbede {
		t.Fatalf("pion reads %+v", ph)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	var h Header
	for _, c := range []struct {
		b   []byte
		err error
	}{
		{[]byte{0x80, 0}, ErrShortPacket},
		{packet(0, 0, 0, 0, nil)[:11], ErrShortPacket},
		{append([]byte{0x40}, make([]byte, 11)...), ErrVersion},
		{append([]byte{0x81}, make([]byte, 11)...), ErrHeaderLength},
		{append([]byte{0x90}, make([]byte, 13)...), ErrHeaderLength},
		{append([]byte{0x90}, append(make([]byte, 13), 0, 1)...), ErrHeaderLength},
	} {
		if _, err := h.Unmarshal(c.b); !errors.Is(err, c.err) {
			t.Errorf("Unmarshal(% x) = %v, want %v", c.b, err, c.err)
		}
	}
}

func TestPayloadLen(t *testing.T) {
	b := packet(0, 1, 2, 3, []byte{1, 2, 3, 4})
	if n, err := PayloadLen(b, 12); n != 4 || err != nil {
		t.Fatalf("PayloadLen = %d, %v", n, err)
	}
	b[0] |= 0x20
	b[len(b)-1] = 2
	if n, err := PayloadLen(b, 12); n != 2 || err != nil {
		t.Fatalf("padded PayloadLen = %d, %v", n, err)
	}
	b[len(b)-1] = 9
	if _, err := PayloadLen(b, 12); !errors.Is(err, ErrPadding) {
		t.Fatalf("bad padding: %v", err)
	}
}

func TestPayloadMap(t *testing.T) {
	var m PayloadMap
	if out, ok := m.Lookup(8); !ok || out != 8 {
		t.Fatal("zero map is not identity")
	}
	m.Set(101, 96)
	m.Set(0, 0)
	m.Set(101, 97) // remap: still one entry
	if m.Len() != 2 {
		t.Fatalf("Len = %d", m.Len())
	}
	if out, ok := m.Lookup(101); !ok || out != 97 {
		t.Fatalf("101 → %d %v", out, ok)
	}
	if _, ok := m.Lookup(8); ok {
		t.Fatal("unmapped PT passes")
	}
}

func TestRewriterPayloadTypeAndContinuity(t *testing.T) {
	var r Rewriter
	r.Map.Set(0, 0)    // PCMU
	r.Map.Set(101, 96) // telephone-event 101 on this leg is 96 on the other
	in := []struct {
		pt     uint8
		seq    uint16
		marker bool
	}{
		{0, 65533, false}, {101, 65534, true}, {13, 65535, false}, // CN not negotiated: dropped
		{0, 0, false}, {13, 1, false}, {0, 2, false},
	}
	var got []uint16
	var pts []uint8
	for _, p := range in {
		b := packet(p.pt, p.seq, 160, 0xabcd, []byte{0xff})
		if p.marker {
			b[1] |= 0x80
		}
		v, err := r.Rewrite(b)
		if err != nil {
			t.Fatal(err)
		}
		if v != Forward {
			continue
		}
		if b[1]&0x80 != 0 != p.marker {
			t.Fatalf("marker changed for seq %d", p.seq)
		}
		if binary.BigEndian.Uint32(b[8:]) != 0xabcd {
			t.Fatal("SSRC changed")
		}
		got = append(got, binary.BigEndian.Uint16(b[2:]))
		pts = append(pts, b[1]&0x7f)
	}
	want := []uint16{65533, 65534, 65535, 0}
	if len(got) != len(want) {
		t.Fatalf("forwarded seqs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("forwarded seqs %v, want %v (continuous across drops and wrap)", got, want)
		}
	}
	if pts[1] != 96 || pts[0] != 0 {
		t.Fatalf("payload types %v", pts)
	}
}

func TestRewriterLatePacket(t *testing.T) {
	var r Rewriter
	r.Map.Set(0, 0)
	seqOut := func(pt uint8, seq uint16) (uint16, bool) {
		b := packet(pt, seq, 0, 1, nil)
		v, _ := r.Rewrite(b)
		return binary.BigEndian.Uint16(b[2:]), v == Forward
	}
	seqOut(0, 10)
	seqOut(13, 12) // dropped: 11 is late
	if s, ok := seqOut(0, 13); !ok || s != 12 {
		t.Fatalf("13 → %d", s)
	}
	if s, ok := seqOut(0, 11); !ok || s != 11 {
		t.Fatalf("late 11 → %d, want 11 (before the gap)", s)
	}
}

func TestRewriterZeroValueIdentity(t *testing.T) {
	var r Rewriter
	b := packet(99, 7, 8, 9, []byte{1, 2})
	orig := append([]byte(nil), b...)
	if v, err := r.Rewrite(b); v != Forward || err != nil || !bytes.Equal(b, orig) {
		t.Fatalf("zero Rewriter changed the packet: %v %v % x", v, err, b)
	}
}

func TestValidateRTCP(t *testing.T) {
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 42}                 // empty RR, length 1 word
	sdes := []byte{0x81, 202, 0, 2, 0, 0, 0, 42, 1, 1, 'x', 0} // SDES CNAME "x"
	ssrc, err := RTCPSSRC(append(append([]byte{}, rr...), sdes...))
	if err != nil || ssrc != 42 {
		t.Fatalf("RTCPSSRC = %d, %v", ssrc, err)
	}
	if err := ValidateRTCP(append(rr, 0)); !errors.Is(err, ErrRTCPLength) {
		t.Fatalf("trailing byte: %v", err)
	}
	if err := ValidateRTCP(rr[:6]); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("short: %v", err)
	}
}

func TestRewriteAllocs(t *testing.T) {
	var r Rewriter
	r.Map.Set(0, 8)
	b := packet(0, 1, 2, 3, make([]byte, 160))
	if a := testing.AllocsPerRun(100, func() { r.Rewrite(b); b[1] = 0 }); a != 0 {
		t.Fatalf("Rewrite allocates %v per packet", a)
	}
	var h Header
	if a := testing.AllocsPerRun(100, func() { h.Unmarshal(b) }); a != 0 {
		t.Fatalf("Unmarshal allocates %v per packet", a)
	}
}

func BenchmarkRewrite(b *testing.B) {
	var r Rewriter
	r.Map.Set(0, 0)
	r.Map.Set(101, 96)
	p := packet(0, 1, 2, 3, make([]byte, 160))
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(p[2:], uint16(i))
		if _, err := r.Rewrite(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	p := packet(0, 1, 2, 3, make([]byte, 160))
	b.ReportAllocs()
	for b.Loop() {
		if Classify(p) != KindRTP {
			b.Fatal("not RTP")
		}
	}
}
