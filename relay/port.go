package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleygw/parley/relay/ice"
	"github.com/parleygw/parley/relay/internal/batchio"
	"github.com/parleygw/parley/relay/rtpx"
)

// Buffer layout: a datagram is read into the first readLen bytes of a
// bufSize buffer, leaving room for the SRTP/SRTCP overhead added in place.
const (
	bufSize = 2048
	readLen = bufSize - 256
)

// portAlloc hands out RTP/RTCP port pairs (even, even+1) from the range.
type portAlloc struct {
	ip       netip.Addr
	min, max uint16 // min 0: ephemeral ports

	mu   sync.Mutex
	next uint16
	used map[uint16]bool
}

func newPortAlloc(ip netip.Addr, min, max uint16) *portAlloc {
	min += min & 1 // start on an even port
	return &portAlloc{ip: ip, min: min, max: max, next: min, used: map[uint16]bool{}}
}

// open binds a pair of UDP sockets.
func (a *portAlloc) open() (rtp, rtcp *net.UDPConn, err error) {
	if a.min == 0 {
		rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, 0)))
		if err != nil {
			return nil, nil, err
		}
		rtcp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, 0)))
		if err != nil {
			rtp.Close()
			return nil, nil, err
		}
		return rtp, rtcp, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pairs := int(a.max-a.min+1) / 2
	for i := 0; i < pairs; i++ {
		p := a.next
		a.next += 2
		if a.next+1 > a.max || a.next < a.min {
			a.next = a.min
		}
		if a.used[p] {
			continue
		}
		rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, p)))
		if err != nil {
			continue // taken by someone else
		}
		rtcp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, p+1)))
		if err != nil {
			rtp.Close()
			continue
		}
		a.used[p] = true
		return rtp, rtcp, nil
	}
	return nil, nil, ErrPortsExhausted
}

func (a *portAlloc) free(p *port) {
	if a.min == 0 {
		return
	}
	a.mu.Lock()
	delete(a.used, p.rtp.addr.Port())
	a.mu.Unlock()
}

// port is an RTP/RTCP socket pair, shared by many legs or dedicated to one.
type port struct {
	shared    bool
	rtp, rtcp *sock
	closeOnce sync.Once
}

func (r *Relay) openPort(shared bool) (*port, error) {
	c1, c2, err := r.ports.open()
	if err != nil {
		return nil, err
	}
	p := &port{shared: shared}
	batch := r.o.Batch
	if !shared {
		// A dedicated socket carries one peer's 50 packets a second: there
		// is nothing to batch, and big batches only cost memory.
		batch = 4
	}
	for i, c := range []*net.UDPConn{c1, c2} {
		if shared {
			_ = c.SetReadBuffer(r.o.SocketBuffer)
			_ = c.SetWriteBuffer(r.o.SocketBuffer)
		}
		bc, err := batchio.New(c, batchio.Mode(r.o.IO), batch)
		if err != nil {
			c1.Close()
			c2.Close()
			return nil, fmt.Errorf("relay: %w", err)
		}
		s := newSock(r, p, uint8(i+1), bc, batch)
		if i == 0 {
			p.rtp = s
		} else {
			p.rtcp = s
		}
	}
	for _, s := range []*sock{p.rtp, p.rtcp} {
		r.socks.Add(1)
		go s.run()
	}
	return p, nil
}

func (p *port) post(ch change) {
	p.rtp.post(ch)
	p.rtcp.post(ch)
}

func (p *port) close() {
	p.closeOnce.Do(func() {
		p.rtp.conn.Close()
		p.rtcp.conn.Close()
	})
}

// changeOp is a control-plane change a socket's reader applies between two
// batches, so the reader owns its lookup tables without locking them.
type changeOp uint8

const (
	opAdd     changeOp = iota // leg allocated: its ufrag
	opRelatch                 // leg's remote changed: expected addresses
	opRemove                  // leg released
)

type change struct {
	op  changeOp
	leg *leg
	rd  *RemoteDescription
}

// route says which leg a source address belongs to.
type route struct {
	leg     *leg
	latched bool // a plain-RTP leg's first packet came: address locked
}

type outq struct {
	conn batchio.Conn
	ms   []batchio.Msg
}

// sock is one UDP socket and the goroutine that reads it.
type sock struct {
	r    *Relay
	port *port
	comp uint8 // 1: RTP (and muxed RTCP), 2: RTCP
	conn batchio.Conn
	addr netip.AddrPort

	mu      sync.Mutex
	pending []change
	dirty   atomic.Bool

	// Counters of packets no leg could be charged with.
	unrouted, malformed, sendErrs atomic.Uint64

	// Owned by the reader goroutine.
	routes map[netip.AddrPort]*route
	byLeg  map[*leg][]netip.AddrPort
	byIP   map[netip.Addr][]*leg // plain-RTP legs waiting to latch
	ufrags map[string]*leg
	msgs   []batchio.Msg
	resp   [][]byte // STUN responses, one slot per message of a batch
	outs   []outq
}

func newSock(r *Relay, p *port, comp uint8, c batchio.Conn, batch int) *sock {
	s := &sock{r: r, port: p, comp: comp, conn: c, addr: c.LocalAddr(),
		routes: map[netip.AddrPort]*route{}, byLeg: map[*leg][]netip.AddrPort{},
		byIP: map[netip.Addr][]*leg{}, ufrags: map[string]*leg{},
		msgs: make([]batchio.Msg, batch), resp: make([][]byte, batch)}
	for i := range s.msgs {
		s.msgs[i].Buf = make([]byte, readLen, bufSize)
		s.resp[i] = make([]byte, 512)
	}
	return s
}

func (s *sock) post(ch change) {
	s.mu.Lock()
	s.pending = append(s.pending, ch)
	s.dirty.Store(true)
	s.mu.Unlock()
}

func (s *sock) applyChanges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyChangesLocked()
}

func (s *sock) applyChangesLocked() {
	pending := s.pending
	s.pending = nil
	s.dirty.Store(false)
	for _, ch := range pending {
		switch ch.op {
		case opAdd:
			s.ufrags[ch.leg.local.ICE.Ufrag] = ch.leg
		case opRelatch:
			s.forget(ch.leg)
			if ch.rd.ICE != nil {
				continue // routes come from verified checks
			}
			want := ch.rd.Addr
			if s.comp == 2 {
				want = ch.rd.rtcpAddr()
			}
			if !want.IsValid() {
				continue
			}
			s.routes[want] = &route{leg: ch.leg}
			s.byLeg[ch.leg] = append(s.byLeg[ch.leg], want)
			s.byIP[want.Addr()] = append(s.byIP[want.Addr()], ch.leg)
		case opRemove:
			s.forget(ch.leg)
			delete(s.ufrags, ch.leg.local.ICE.Ufrag)
		}
	}
}

// forget drops every route and latch entry of l.
func (s *sock) forget(l *leg) {
	for _, a := range s.byLeg[l] {
		if rt := s.routes[a]; rt != nil && rt.leg == l {
			delete(s.routes, a)
		}
		s.unwait(l, a.Addr())
	}
	delete(s.byLeg, l)
}

func (s *sock) unwait(l *leg, ip netip.Addr) {
	w := s.byIP[ip]
	for i, x := range w {
		if x == l {
			w = append(w[:i], w[i+1:]...)
			break
		}
	}
	if len(w) == 0 {
		delete(s.byIP, ip)
	} else {
		s.byIP[ip] = w
	}
}

func (s *sock) run() {
	defer s.r.socks.Done()
	for {
		n, err := s.conn.ReadBatch(s.msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.r.log.Warn("relay: read", "sock", s.addr, "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		if s.dirty.Load() {
			s.applyChanges()
		}
		now := s.r.now()
		for i := 0; i < n; i++ {
			s.handle(i, now)
		}
		s.flush()
		for i := 0; i < n; i++ {
			s.msgs[i].Buf = s.msgs[i].Buf[:readLen]
		}
	}
}

// handle processes datagram i of the batch.
func (s *sock) handle(i int, now time.Time) {
	m := &s.msgs[i]
	b := m.Buf[:m.N]
	switch rtpx.Classify(b) {
	case rtpx.KindSTUN:
		s.handleSTUN(i, b, m.Addr, now)
		return
	case rtpx.KindRTP:
		if s.comp == 2 {
			s.malformed.Add(1)
			return
		}
		s.handleMedia(m, false, now)
	case rtpx.KindRTCP:
		s.handleMedia(m, true, now)
	default:
		// DTLS will go here with DTLS-SRTP legs.
		s.malformed.Add(1)
	}
}

func (s *sock) handleMedia(m *batchio.Msg, rtcp bool, now time.Time) {
	rt := s.routes[m.Addr]
	if rt != nil {
		if !rt.latched {
			s.lock(rt, m.Addr)
		}
		s.forward(rt.leg, m, rtcp, now, false)
		return
	}
	// An unknown source: a plain-RTP leg's first packet from another port
	// than it described (NAT), or nobody's.
	w := s.byIP[m.Addr.Addr()]
	if !s.port.shared {
		// A dedicated socket has one leg: its first packet from the
		// expected IP latches it (symmetric RTP).
		if len(w) == 1 {
			rt = &route{leg: w[0]}
			s.lock(rt, m.Addr)
			s.forward(rt.leg, m, rtcp, now, false)
			return
		}
	} else {
		// On a shared socket an IP proves nothing (many peers share a media
		// server's or a NAT's address): the packet must authenticate with
		// a waiting leg's SRTP keys. A plain-RTP leg on a shared socket is
		// accepted only from the exact address it described.
		tried := 0
		for _, l := range w {
			if rd := l.remote.Load(); rd == nil || rd.Crypto == nil {
				continue
			}
			if tried++; tried > maxTrials {
				break
			}
			if s.forward(l, m, rtcp, now, true) {
				s.lock(&route{leg: l}, m.Addr)
				return
			}
		}
	}
	s.unrouted.Add(1)
}

// maxTrials bounds the SRTP legs an unknown packet is tried against.
const maxTrials = 8

// forward runs m through leg l's pipe and queues the result for the far
// peer. It reports whether the packet was valid for l (authenticated).
func (s *sock) forward(l *leg, m *batchio.Msg, rtcp bool, now time.Time, trial bool) bool {
	if l.closed.Load() {
		return false
	}
	far := l.other()
	dst := far.rtpDst.Load()
	to := far.port.rtp
	if rtcp {
		dst = far.rtcpDst.Load()
		if frd := far.remote.Load(); frd == nil || !frd.RTCPMux {
			to = far.port.rtcp
		}
	}
	p := &l.rtpPipe
	if rtcp {
		p = &l.rtcpPipe
	}
	n, valid, err := p.process(m.Buf, m.N, rtcp, dst != nil, trial)
	if valid {
		l.lastRx.Store(now.UnixNano())
	}
	if err == nil {
		s.queue(to.conn, m.Buf[:n], *dst)
	}
	return valid
}

// lock makes src the only address rt's leg is accepted from on this socket
// and the address it is sent to.
func (s *sock) lock(rt *route, src netip.AddrPort) {
	l := rt.leg
	for _, a := range s.byLeg[l] {
		if a != src {
			delete(s.routes, a)
		}
		s.unwait(l, a.Addr())
	}
	rt.latched = true
	s.routes[src] = rt
	s.byLeg[l] = append(s.byLeg[l][:0], src)
	d := src
	if s.comp == 1 {
		l.rtpDst.Store(&d)
		if rd := l.remote.Load(); rd != nil && rd.RTCPMux {
			l.rtcpDst.Store(&d)
		}
	} else {
		l.rtcpDst.Store(&d)
	}
}

func (s *sock) handleSTUN(i int, b []byte, src netip.AddrPort, now time.Time) {
	u, ok := ice.LocalUfrag(b)
	if !ok {
		s.malformed.Add(1)
		return
	}
	l := s.ufrags[string(u)]
	if l == nil || l.closed.Load() {
		s.unrouted.Add(1)
		return
	}
	l.iceMu.Lock()
	resp, chk, err := l.responder.Handle(b, src, s.resp[i])
	if err == nil {
		l.consent.Refresh(now)
		l.consentLost = false
		if chk.UseCandidate || !l.nominated[s.comp].IsValid() {
			l.nominated[s.comp] = src
			d := src
			if s.comp == 1 {
				l.rtpDst.Store(&d)
				if rd := l.remote.Load(); rd != nil && rd.RTCPMux {
					l.rtcpDst.Store(&d)
				}
			} else {
				l.rtcpDst.Store(&d)
			}
		}
	}
	l.iceMu.Unlock()
	if err == nil {
		if rt := s.routes[src]; rt == nil || rt.leg != l {
			s.routes[src] = &route{leg: l, latched: true}
			s.byLeg[l] = append(s.byLeg[l], src)
		}
		l.lastRx.Store(now.UnixNano())
	} else {
		s.r.log.Debug("relay: ICE check refused", "call", l.call.id, "leg", l.id, "from", src, "err", err)
	}
	if resp != nil {
		s.queue(s.conn, resp, src)
	}
}

// queue adds a datagram to this batch's writes towards conn.
func (s *sock) queue(conn batchio.Conn, b []byte, dst netip.AddrPort) {
	var q *outq
	for j := range s.outs {
		if s.outs[j].conn == conn {
			q = &s.outs[j]
			break
		}
	}
	if q == nil {
		if len(s.outs) < cap(s.outs) {
			s.outs = s.outs[:len(s.outs)+1]
		} else {
			s.outs = append(s.outs, outq{ms: make([]batchio.Msg, 0, len(s.msgs))})
		}
		q = &s.outs[len(s.outs)-1]
		q.conn, q.ms = conn, q.ms[:0]
	}
	q.ms = append(q.ms, batchio.Msg{Buf: b, N: len(b), Addr: dst})
}

func (s *sock) flush() {
	for j := range s.outs {
		q := &s.outs[j]
		if len(q.ms) == 0 {
			continue
		}
		if _, err := q.conn.WriteBatch(q.ms); err != nil {
			if errors.Is(err, net.ErrClosed) {
				// The far leg's dedicated port closed under us (released).
			} else {
				s.sendErrs.Add(1)
			}
		}
		for k := range q.ms {
			q.ms[k].Buf = nil
		}
		q.ms = q.ms[:0]
		q.conn = nil
	}
	s.outs = s.outs[:0]
}
