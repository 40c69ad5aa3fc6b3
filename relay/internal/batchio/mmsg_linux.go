package batchio

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockaddrLen is sizeof(struct sockaddr_in6), big enough for either family.
const sockaddrLen = 28

type sockaddr [sockaddrLen]byte

// mmsgConn calls recvmmsg/sendmmsg itself. All headers, iovecs and address
// buffers are allocated once; the functions handed to RawConn are bound
// once, so a batch costs no allocation.
type mmsgConn struct {
	c     *net.UDPConn
	rc    syscall.RawConn
	local netip.AddrPort
	v6    bool // the socket is AF_INET6: destinations are written as such

	r, w   half
	wmu    sync.Mutex // WriteBatch may be called from several goroutines
	readF  func(fd uintptr) bool
	writeF func(fd uintptr) bool
}

type half struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []sockaddr
	oob   [][pktinfoSpace]byte
	n     int   // vlen for the call in flight; result count after it
	errno error // result error
}

func newHalf(batch int) half {
	return half{hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch), names: make([]sockaddr, batch),
		oob: make([][pktinfoSpace]byte, batch)}
}

func newMMsg(c *net.UDPConn, local netip.AddrPort, batch int) (Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgConn{c: c, rc: rc, local: local, v6: local.Addr().Is6(), r: newHalf(batch), w: newHalf(batch)}
	m.readF = m.doRead
	m.writeF = m.doWrite
	return m, nil
}

func (m *mmsgConn) doRead(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.r.hdrs[0])), uintptr(m.r.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	if e != 0 {
		m.r.n, m.r.errno = 0, e
		return true
	}
	m.r.n, m.r.errno = int(n), nil
	return true
}

func (m *mmsgConn) doWrite(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.w.hdrs[0])), uintptr(m.w.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	if e != 0 {
		m.w.n, m.w.errno = 0, e
		return true
	}
	m.w.n, m.w.errno = int(n), nil
	return true
}

func (m *mmsgConn) ReadBatch(ms []Msg) (int, error) {
	n := min(len(ms), len(m.r.hdrs))
	if n == 0 {
		return 0, nil
	}
	for i := 0; i < n; i++ {
		buf := ms[i].Buf
		if len(buf) == 0 {
			return 0, errors.New("batchio: empty read buffer")
		}
		m.r.iovs[i].Base = &buf[0]
		m.r.iovs[i].SetLen(len(buf))
		h := &m.r.hdrs[i].Hdr
		h.Name = &m.r.names[i][0]
		h.Namelen = sockaddrLen
		h.Iov = &m.r.iovs[i]
		h.SetIovlen(1)
		h.Control, h.Controllen, h.Flags = nil, 0, 0
	}
	m.r.n = n
	if err := m.rc.Read(m.readF); err != nil {
		return 0, err
	}
	if m.r.errno != nil {
		return 0, m.r.errno
	}
	got := m.r.n
	for i := 0; i < got; i++ {
		ms[i].N = int(m.r.hdrs[i].Len)
		ms[i].Addr = parseSockaddr(&m.r.names[i])
	}
	// The buffers must stay reachable until here, not past it.
	for i := 0; i < n; i++ {
		m.r.iovs[i].Base = nil
	}
	return got, nil
}

func (m *mmsgConn) WriteBatch(ms []Msg) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	var first error
	done := 0
	for done < len(ms) {
		n := min(len(ms)-done, len(m.w.hdrs))
		for i := 0; i < n; i++ {
			msg := &ms[done+i]
			if msg.N > 0 {
				m.w.iovs[i].Base = &msg.Buf[0]
			} else {
				m.w.iovs[i].Base = nil
			}
			m.w.iovs[i].SetLen(msg.N)
			h := &m.w.hdrs[i].Hdr
			h.Name = &m.w.names[i][0]
			h.Namelen = putSockaddr(&m.w.names[i], msg.Addr, m.v6)
			h.Iov = &m.w.iovs[i]
			h.SetIovlen(1)
			h.Control, h.Controllen, h.Flags = nil, 0, 0
			if msg.Src.IsValid() && msg.Src.Is4() {
				putPktinfo(&m.w.oob[i], msg.Src)
				h.Control = &m.w.oob[i][0]
				h.SetControllen(unix.CmsgSpace(unix.SizeofInet4Pktinfo))
			}
		}
		m.w.n = n
		if err := m.rc.Write(m.writeF); err != nil {
			return done, err
		}
		sent := m.w.n
		if m.w.errno != nil {
			if first == nil {
				first = m.w.errno
			}
			sent = 1 // the first datagram was refused: skip it
		}
		done += sent
	}
	for i := range m.w.iovs {
		m.w.iovs[i].Base = nil
	}
	return len(ms), first
}

func (m *mmsgConn) LocalAddr() netip.AddrPort { return m.local }
func (m *mmsgConn) Close() error              { return m.c.Close() }

func parseSockaddr(b *sockaddr) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(a.Unmap(), port)
	}
	return netip.AddrPort{}
}

func putSockaddr(b *sockaddr, ap netip.AddrPort, v6 bool) uint32 {
	a := ap.Addr()
	if !v6 {
		binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:4], ap.Port())
		a4 := a.Unmap().As4()
		copy(b[4:8], a4[:])
		clear(b[8:16])
		return 16
	}
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:4], ap.Port())
	clear(b[4:8])
	a16 := a.As16() // v4 becomes v4-mapped
	copy(b[8:24], a16[:])
	clear(b[24:28])
	return sockaddrLen
}

// pktinfoSpace holds CMSG_SPACE(sizeof(struct in_pktinfo)): 32 on 64-bit
// Linux, 24 on 32-bit.
const pktinfoSpace = 32

func init() {
	if unix.CmsgSpace(unix.SizeofInet4Pktinfo) > pktinfoSpace {
		panic("batchio: in_pktinfo control message does not fit")
	}
}

func putPktinfo(b *[pktinfoSpace]byte, src netip.Addr) {
	clear(b[:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	pi.Spec_dst = src.As4()
}
