package srtpx

import (
	"encoding/binary"
	"testing"
)

func benchPair(b *testing.B, suite Suite, mki MKI) {
	for _, be := range []Backend{BackendNative, BackendPion} {
		name := string(be)
		if name == "" {
			name = "native"
		}
		b.Run(name, func(b *testing.B) { benchBackend(b, suite, mki, be) })
	}
}

func benchBackend(b *testing.B, suite Suite, mki MKI, be Backend) {
	k, _ := NewKeyParams()
	k.MKI = mki
	tx, _ := NewContext(suite, []KeyParams{k}, Options{Backend: be})
	rx, _ := NewContext(suite, []KeyParams{k}, Options{Backend: be})
	p := rtpPacket(1, 1, make([]byte, 160), 32)
	b.Run("protect", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(172)
		for i := 0; b.Loop(); i++ {
			binary.BigEndian.PutUint16(p[2:], uint16(i))
			if _, err := tx.ProtectRTP(p[:172], 172); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A stream of protected packets to unprotect, made once.
	const ring = 1 << 12
	pkts := make([][]byte, ring)
	tx2, _ := NewContext(suite, []KeyParams{k}, Options{Backend: be})
	for i := range pkts {
		q := rtpPacket(uint16(i), 2, make([]byte, 160), 32)
		n, _ := tx2.ProtectRTP(q, len(q))
		pkts[i] = q[:n]
	}
	b.Run("unprotect", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(172)
		buf := make([]byte, 256)
		var seq uint32
		for b.Loop() {
			q := pkts[seq%ring]
			n := copy(buf, q)
			// Keep the index moving past the ring: rewrite nothing, just use
			// a fresh receiver each lap so the replay window accepts it.
			if _, err := rx.UnprotectRTP(buf[:n]); err != nil {
				b.Fatal(err)
			}
			seq++
			if seq%ring == 0 {
				b.StopTimer()
				rx, _ = NewContext(suite, []KeyParams{k}, Options{Backend: be})
				b.StartTimer()
			}
		}
	})
}

func BenchmarkSRTP80(b *testing.B)    { benchPair(b, AES_CM_128_HMAC_SHA1_80, MKI{}) }
func BenchmarkSRTP32(b *testing.B)    { benchPair(b, AES_CM_128_HMAC_SHA1_32, MKI{}) }
func BenchmarkSRTP80MKI(b *testing.B) { benchPair(b, AES_CM_128_HMAC_SHA1_80, MKI{Value: 1, Len: 1}) }
