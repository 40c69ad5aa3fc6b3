// Package batchio reads and writes batches of UDP datagrams: recvmmsg and
// sendmmsg called directly through syscall.RawConn on Linux (nothing
// allocated per datagram), golang.org/x/net/ipv4's ReadBatch/WriteBatch
// (the same system calls, but x/net builds a *net.UDPAddr for every
// datagram it reads), or one datagram per call as a portable fallback.
//
// It must not know what the datagrams carry.
package batchio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrClosed is returned once the socket is closed.
var ErrClosed = net.ErrClosed

// ErrUnsupported: the mode does not exist on this platform.
var ErrUnsupported = errors.New("batchio: mode not supported on this platform")

// Msg is one datagram. For reading, Buf is the buffer to fill and N and
// Addr are set; for writing, Buf[:N] is sent to Addr.
type Msg struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
	// Src, when valid, is the IPv4 source address to send from (IP_PKTINFO;
	// the socket must be bound to the unspecified address). Only the mmsg
	// mode honours it; load generators use it to be many endpoints at once.
	Src netip.Addr
}

// Conn is a UDP socket that moves datagrams in batches. ReadBatch blocks
// until at least one datagram is there and returns how many it filled;
// WriteBatch sends all of ms (a datagram the kernel refuses is skipped and
// its error returned after the rest went out). One goroutine reads; any
// number may write (writes are serialised inside, as the kernel would).
type Conn interface {
	ReadBatch(ms []Msg) (int, error)
	WriteBatch(ms []Msg) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

// Mode selects the implementation.
type Mode string

// The implementations.
const (
	ModeAuto   Mode = ""       // mmsg where available, else single
	ModeMMsg   Mode = "mmsg"   // recvmmsg/sendmmsg through syscall.RawConn (Linux)
	ModeXNet   Mode = "xnet"   // golang.org/x/net/ipv4 ReadBatch/WriteBatch
	ModeSingle Mode = "single" // ReadFromUDPAddrPort / WriteToUDPAddrPort
)

// New wraps c; batch is the most datagrams one call moves.
func New(c *net.UDPConn, mode Mode, batch int) (Conn, error) {
	if batch <= 0 {
		batch = 32
	}
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("batchio: %T is not a UDP address", c.LocalAddr())
	}
	local := la.AddrPort()
	switch mode {
	case ModeAuto:
		if cc, err := newMMsg(c, local, batch); err == nil {
			return cc, nil
		}
		return &single{c: c, local: local}, nil
	case ModeMMsg:
		return newMMsg(c, local, batch)
	case ModeXNet:
		return newXNet(c, local, batch), nil
	case ModeSingle:
		return &single{c: c, local: local}, nil
	}
	return nil, fmt.Errorf("batchio: unknown mode %q", mode)
}

type single struct {
	c     *net.UDPConn
	local netip.AddrPort
}

func (s *single) ReadBatch(ms []Msg) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	n, a, err := s.c.ReadFromUDPAddrPort(ms[0].Buf)
	if err != nil {
		return 0, err
	}
	ms[0].N, ms[0].Addr = n, a
	return 1, nil
}

func (s *single) WriteBatch(ms []Msg) (int, error) {
	var first error
	for i := range ms {
		if _, err := s.c.WriteToUDPAddrPort(ms[i].Buf[:ms[i].N], ms[i].Addr); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return i, err
			}
			if first == nil {
				first = err
			}
		}
	}
	return len(ms), first
}

func (s *single) LocalAddr() netip.AddrPort { return s.local }
func (s *single) Close() error              { return s.c.Close() }
