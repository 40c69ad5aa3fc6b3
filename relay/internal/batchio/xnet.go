package batchio

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
)

// xnetConn is x/net's batch I/O. x/net's ipv4 and ipv6 PacketConns share the
// Message type and both call recvmmsg/sendmmsg; ipv4's works on either
// family's socket for these two calls.
type xnetConn struct {
	c     *net.UDPConn
	pc    *ipv4.PacketConn
	local netip.AddrPort
	rms   []ipv4.Message
	wms   []ipv4.Message
	wmu   sync.Mutex
}

func newXNet(c *net.UDPConn, local netip.AddrPort, batch int) *xnetConn {
	x := &xnetConn{c: c, pc: ipv4.NewPacketConn(c), local: local,
		rms: make([]ipv4.Message, batch), wms: make([]ipv4.Message, batch)}
	for i := range x.rms {
		x.rms[i].Buffers = make([][]byte, 1)
		x.wms[i].Buffers = make([][]byte, 1)
	}
	return x
}

func (x *xnetConn) ReadBatch(ms []Msg) (int, error) {
	n := min(len(ms), len(x.rms))
	for i := 0; i < n; i++ {
		x.rms[i].Buffers[0] = ms[i].Buf
	}
	got, err := x.pc.ReadBatch(x.rms[:n], 0)
	if err != nil {
		return 0, err
	}
	for i := 0; i < got; i++ {
		ms[i].N = x.rms[i].N
		if ua, ok := x.rms[i].Addr.(*net.UDPAddr); ok {
			ms[i].Addr = ua.AddrPort()
		}
	}
	return got, nil
}

func (x *xnetConn) WriteBatch(ms []Msg) (int, error) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	var first error
	done := 0
	for done < len(ms) {
		n := min(len(ms)-done, len(x.wms))
		for i := 0; i < n; i++ {
			m := &ms[done+i]
			x.wms[i].Buffers[0] = m.Buf[:m.N]
			x.wms[i].Addr = net.UDPAddrFromAddrPort(m.Addr)
		}
		sent, err := x.pc.WriteBatch(x.wms[:n], 0)
		if err != nil {
			if first == nil {
				first = err
			}
			if sent <= 0 {
				sent = 1 // skip the datagram the kernel refused
			}
		}
		done += sent
	}
	return len(ms), first
}

func (x *xnetConn) LocalAddr() netip.AddrPort { return x.local }
func (x *xnetConn) Close() error              { return x.c.Close() }
