package relay_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/parleygw/parley/relay"
	"github.com/parleygw/parley/relay/internal/media"
)

// BenchmarkLoopback times packets from one peer to another over loopback,
// directly and through a relay call (plain RTP both legs), 16 in flight at
// a time; ns/op is per packet and allocs/op counts every goroutine,
// the relay's included.
func BenchmarkLoopback(b *testing.B) {
	for _, via := range []bool{false, true} {
		name := "direct"
		if via {
			name = "relay"
		}
		b.Run(name, func(b *testing.B) {
			a, c := newPeer(b), newPeer(b)
			dst := c.addr
			if via {
				r, err := relay.New(testOpts)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				call, _ := r.Allocate(context.Background(), "bench", "bench", relay.AllocateOptions{})
				call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
				call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: c.addr, RTCPMux: true})
				dst = call.Local(relay.LegA).Addr
			}
			pkt := media.RTP(nil, 0, 0, 0, 1, make([]byte, 160))
			in := make([]byte, 1500)
			const inflight = 16
			var seq uint16
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += inflight {
				for k := 0; k < inflight; k++ {
					binary.BigEndian.PutUint16(pkt[2:], seq)
					seq++
					if _, err := a.conn.WriteToUDPAddrPort(pkt, dst); err != nil {
						b.Fatal(err)
					}
				}
				c.conn.SetReadDeadline(time.Now().Add(time.Second))
				for k := 0; k < inflight; k++ {
					if _, _, err := c.conn.ReadFromUDPAddrPort(in); err != nil {
						b.Fatalf("packet lost: %v", err)
					}
				}
			}
		})
	}
}
