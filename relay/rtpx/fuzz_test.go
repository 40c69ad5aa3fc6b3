package rtpx

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzHeader: no panics; what Unmarshal accepts marshals back to the same
// bytes; pion/rtp reads the same fields from it.
func FuzzHeader(f *testing.F) {
	f.Add(packet(0, 1, 2, 3, []byte{1, 2, 3}))
	f.Add([]byte{0x92, 0xe5, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 9, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0})
	f.Add([]byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		n, err := h.Unmarshal(b)
		Classify(b)
		_, _ = PayloadLen(b, n)
		if err != nil {
			return
		}
		out := make([]byte, h.MarshalSize())
		m, err := h.MarshalTo(out)
		if err != nil {
			t.Fatalf("MarshalTo after Unmarshal: %v", err)
		}
		if m != n || !bytes.Equal(out, b[:n]) {
			t.Fatalf("round trip: % x → % x", b[:n], out)
		}
		var ph rtp.Header
		pn, perr := ph.Unmarshal(b)
		if perr != nil {
			return // pion is stricter about some extension forms
		}
		if pn != n || ph.SSRC != h.SSRC || ph.SequenceNumber != h.SequenceNumber ||
			ph.PayloadType != h.PayloadType || ph.Marker != h.Marker || ph.Timestamp != h.Timestamp {
			t.Fatalf("pion disagrees: ours n=%d %+v, pion n=%d %+v", n, h, pn, ph)
		}
	})
}

// FuzzRewrite: no panics; SSRC, timestamp and payload never change; a
// forwarded packet's payload type is one the map allows.
func FuzzRewrite(f *testing.F) {
	f.Add(packet(0, 1, 2, 3, []byte{1}), uint8(0), uint8(8), uint16(0))
	f.Add(packet(101, 65535, 2, 3, nil), uint8(101), uint8(96), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, in, out uint8, n uint16) {
		var r Rewriter
		if n%2 == 1 {
			r.Map.Set(in, out)
		}
		orig := append([]byte(nil), b...)
		for i := 0; i < int(n%5)+1; i++ {
			v, err := r.Rewrite(b)
			if err != nil || len(b) < FixedHeaderSize {
				continue
			}
			if !bytes.Equal(b[4:], orig[4:]) {
				t.Fatal("rewrite touched timestamp, SSRC or payload")
			}
			if v == Forward && r.Map.Len() > 0 && b[1]&0x7f != out&0x7f {
				t.Fatalf("forwarded PT %d, map allows only %d", b[1]&0x7f, out&0x7f)
			}
			binary.BigEndian.PutUint16(b[2:], binary.BigEndian.Uint16(orig[2:])+uint16(i+1))
			b[1] = orig[1]
		}
	})
}

// FuzzRTCP: ValidateRTCP never panics and agrees with walking the packet.
func FuzzRTCP(f *testing.F) {
	f.Add([]byte{0x80, 201, 0, 1, 0, 0, 0, 42})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidateRTCP(b) == nil {
			if _, err := RTCPSSRC(b); err != nil {
				t.Fatal(err)
			}
		}
	})
}
