package srtpx

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func fuzzKeys(mki bool) []KeyParams {
	var k KeyParams
	for i := range k.Master {
		k.Master[i] = byte(i * 7)
	}
	if mki {
		k.MKI = MKI{Value: 1, Len: 1}
	}
	return []KeyParams{k}
}

// FuzzUnprotect: attacker-controlled datagrams never panic either backend
// and never authenticate.
func FuzzUnprotect(f *testing.F) {
	tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, fuzzKeys(true), Options{})
	p := rtpPacket(1, 2, []byte("seed"), 32)
	n, _ := tx.ProtectRTP(p, len(p))
	f.Add(append([]byte(nil), p[:n]...), true)
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, false)
	f.Add([]byte{0x80, 200, 0, 1, 0, 0, 0, 2, 0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false)
	f.Fuzz(func(t *testing.T, b []byte, mki bool) {
		for _, be := range []Backend{BackendNative, BackendPion} {
			rx, err := NewContext(AES_CM_128_HMAC_SHA1_80, fuzzKeys(mki), Options{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			c := append([]byte(nil), b...)
			if _, err := rx.UnprotectRTP(c); err == nil && !bytes.Equal(b, p[:n]) {
				t.Fatalf("%q: forged RTP authenticated: % x", be, b)
			}
			c = append(c[:0], b...)
			if _, err := rx.UnprotectRTCP(c); err == nil {
				t.Fatalf("%q: forged RTCP authenticated: % x", be, b)
			}
		}
	})
}

// FuzzRoundTrip: whatever RTP packet the native backend protects, pion
// unprotects to the same bytes, and the native backend too.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("payload"), uint16(65535), uint8(0), true)
	f.Add([]byte{}, uint16(0), uint8(2), false)
	f.Fuzz(func(t *testing.T, payload []byte, seq uint16, csrc uint8, mki bool) {
		keys := fuzzKeys(mki)
		pkt := rtpPacket(seq, 0x42, nil, 0)
		pkt[0] |= csrc & 0x0f
		pkt = append(pkt, make([]byte, 4*int(csrc&0x0f))...)
		pkt = append(pkt, payload...)
		orig := append([]byte(nil), pkt...)
		buf := make([]byte, len(pkt), len(pkt)+32)
		copy(buf, pkt)
		tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, keys, Options{})
		n, err := tx.ProtectRTP(buf, len(buf))
		if err != nil {
			t.Fatal(err)
		}
		for _, be := range []Backend{BackendNative, BackendPion} {
			rx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, keys, Options{Backend: be})
			c := append([]byte(nil), buf[:n]...)
			m, err := rx.UnprotectRTP(c)
			if err != nil || !bytes.Equal(c[:m], orig) {
				t.Fatalf("%q: %v\n got % x\nwant % x", be, err, c[:m], orig)
			}
		}
		// RTCP with the same payload as a compound's body.
		rtcp := make([]byte, 8, 8+len(payload)+64)
		rtcp[0], rtcp[1] = 0x80, 201
		binary.BigEndian.PutUint32(rtcp[4:], 0x42)
		rtcp = append(rtcp, payload...)
		origRTCP := append([]byte(nil), rtcp...)
		n, err = tx.ProtectRTCP(rtcp, len(rtcp))
		if err != nil {
			t.Fatal(err)
		}
		for _, be := range []Backend{BackendNative, BackendPion} {
			rx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, keys, Options{Backend: be})
			c := append([]byte(nil), rtcp[:n]...)
			m, err := rx.UnprotectRTCP(c)
			if err != nil || !bytes.Equal(c[:m], origRTCP) {
				t.Fatalf("%q RTCP: %v", be, err)
			}
		}
	})
}
