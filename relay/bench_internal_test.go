package relay

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pion/srtp/v2"

	"github.com/parleygw/parley/relay/srtpx"
)

// packetPath sets up one call whose legs' peers are at fixed addresses and
// returns the shared socket and a function that makes the next packet from
// leg A's peer (plain or SRTP) in msg slot 0.
func packetPath(b *testing.B, secure bool) (s *sock, next func(seq uint16), c *Call) {
	r, err := New(Options{SharedPorts: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	c, err = r.Allocate(context.Background(), "bench", "bench", AllocateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pa := netip.MustParseAddrPort("127.0.0.1:40000")
	pb := netip.MustParseAddrPort("127.0.0.1:40002")
	rda := RemoteDescription{Addr: pa, RTCPMux: true, Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 101, Name: "telephone-event", ClockRate: 8000}}}
	rdb := RemoteDescription{Addr: pb, RTCPMux: true, Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 96, Name: "telephone-event", ClockRate: 8000}}}
	var tx *srtp.Context
	if secure {
		ka, _ := srtpx.NewKeyParams()
		kb, _ := srtpx.NewKeyParams()
		rda.Crypto = &Crypto{Suite: srtpx.AES_CM_128_HMAC_SHA1_80, Keys: []srtpx.KeyParams{ka}}
		rdb.Crypto = &Crypto{Suite: srtpx.AES_CM_128_HMAC_SHA1_80, Keys: []srtpx.KeyParams{kb}}
		tx, _ = srtp.CreateContext(ka.Key(), ka.Salt(), srtp.ProtectionProfileAes128CmHmacSha1_80)
	}
	if err := c.SetRemote(LegA, rda); err != nil {
		b.Fatal(err)
	}
	if err := c.SetRemote(LegB, rdb); err != nil {
		b.Fatal(err)
	}
	s = r.shared[0].rtp
	s.mu.Lock()
	s.applyChangesLocked()
	s.mu.Unlock()

	plain := make([]byte, 172)
	plain[0] = 0x80
	binary.BigEndian.PutUint32(plain[8:], 0x1234)
	// Pre-encrypt a ring of packets so the benchmark measures the relay.
	const ring = 1 << 14
	var pkts [][]byte
	if secure {
		for i := 0; i < ring; i++ {
			binary.BigEndian.PutUint16(plain[2:], uint16(i))
			p, _ := tx.EncryptRTP(nil, plain, nil)
			pkts = append(pkts, p)
		}
	}
	m := &s.msgs[0]
	next = func(seq uint16) {
		if secure {
			m.N = copy(m.Buf[:readLen], pkts[int(seq)%ring])
		} else {
			binary.BigEndian.PutUint16(plain[2:], seq)
			m.N = copy(m.Buf[:readLen], plain)
		}
		m.Addr = pa
	}
	return s, next, c
}

// BenchmarkPacketPath is the relay's per-packet work without the system
// calls: demultiplex, (SRTP unprotect), payload-type/sequence rewrite,
// (SRTP protect for the far leg), queue for the batch write.
func BenchmarkPacketPath(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "sdes-both-legs"
		}
		b.Run(name, func(b *testing.B) {
			s, next, c := packetPath(b, secure)
			b.ReportAllocs()
			var seq uint16
			for b.Loop() {
				next(seq)
				s.handle(0, s.r.now())
				s.outs = s.outs[:0] // drop the write: no system call here
				seq++
				if secure && seq == 1<<14 {
					b.StopTimer()
					s, next, c = packetPath(b, secure) // fresh replay state
					seq = 0
					b.StartTimer()
				}
			}
			b.StopTimer()
			if st := c.Stats(LegA); st.Drops != ([NumDropReasons]uint64{}) {
				b.Fatalf("drops %+v", st.Drops)
			}
		})
	}
}
