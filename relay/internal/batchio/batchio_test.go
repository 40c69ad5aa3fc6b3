package batchio

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestModesRoundTrip(t *testing.T) {
	for _, mode := range []Mode{ModeAuto, ModeMMsg, ModeXNet, ModeSingle} {
		t.Run(string(mode)+"_", func(t *testing.T) {
			a, err := New(listen(t), mode, 8)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(listen(t), mode, 8)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]Msg, 20)
			for i := range out {
				out[i] = Msg{Buf: []byte(fmt.Sprintf("datagram %02d", i)), Addr: b.LocalAddr()}
				out[i].N = len(out[i].Buf)
			}
			if n, err := a.WriteBatch(out); n != len(out) || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			in := make([]Msg, 8)
			for i := range in {
				in[i].Buf = make([]byte, 1500)
			}
			got := 0
			deadline := time.Now().Add(2 * time.Second)
			for got < len(out) && time.Now().Before(deadline) {
				n, err := b.ReadBatch(in)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					want := fmt.Sprintf("datagram %02d", got)
					if !bytes.Equal(in[i].Buf[:in[i].N], []byte(want)) || in[i].Addr != a.LocalAddr() {
						t.Fatalf("got %q from %v, want %q from %v", in[i].Buf[:in[i].N], in[i].Addr, want, a.LocalAddr())
					}
					got++
				}
			}
			if got != len(out) {
				t.Fatalf("received %d of %d", got, len(out))
			}
		})
	}
}

func TestMMsgNoAllocs(t *testing.T) {
	a, err := New(listen(t), ModeMMsg, 8)
	if err != nil {
		t.Skip(err)
	}
	b, _ := New(listen(t), ModeMMsg, 8)
	out := []Msg{{Buf: make([]byte, 172), N: 172, Addr: b.LocalAddr()}}
	in := []Msg{{Buf: make([]byte, 1500)}}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		if n, err := b.ReadBatch(in); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("mmsg write+read allocates %v per datagram", allocs)
	}
}

func BenchmarkLoopback(b *testing.B) {
	for _, mode := range []Mode{ModeMMsg, ModeXNet, ModeSingle} {
		b.Run(string(mode), func(b *testing.B) {
			x, err := New(listen(b), mode, 32)
			if err != nil {
				b.Skip(err)
			}
			y, _ := New(listen(b), mode, 32)
			const batch = 16
			out := make([]Msg, batch)
			in := make([]Msg, batch)
			for i := range out {
				out[i] = Msg{Buf: make([]byte, 172), N: 172, Addr: y.LocalAddr()}
				in[i].Buf = make([]byte, 1500)
			}
			b.ReportAllocs()
			b.SetBytes(172 * batch)
			for b.Loop() {
				x.WriteBatch(out)
				for got := 0; got < batch; {
					n, err := y.ReadBatch(in)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}
