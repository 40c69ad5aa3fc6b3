package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleygw/parley/relay/ice"
	"github.com/parleygw/parley/relay/rtpx"
	"github.com/parleygw/parley/relay/srtpx"
)

// Call is one allocated call: two legs and the media between them. Its
// methods are safe for concurrent use; the owner usually drives it through
// the Relay by call ID.
type Call struct {
	r       *Relay
	id      string
	owner   string
	created time.Time

	mu       sync.Mutex // control operations on this call
	released bool
	legs     [2]*leg
}

// ID is the call ID the owner allocated it under.
func (c *Call) ID() string { return c.id }

// Owner is the owner given at allocation.
func (c *Call) Owner() string { return c.owner }

// Local is what to tell leg l's peer about the relay.
func (c *Call) Local(l LegID) LocalDescription { return c.legs[l&1].local }

// Allocation is the call's record.
func (c *Call) Allocation() Allocation {
	return Allocation{CallID: c.id, Owner: c.owner, Instance: c.r.o.Instance,
		Legs: [2]LocalDescription{c.legs[0].local, c.legs[1].local}, Created: c.created}
}

// Stats returns leg l's counters: Rx what its peer sent, Tx what the relay
// sent it, drops of packets that came from it.
func (c *Call) Stats(l LegID) Counters {
	lg := c.legs[l&1]
	var s Counters
	for _, p := range []*pipe{&lg.rtpPipe, &lg.rtcpPipe} {
		p.mu.Lock()
		s.RxPackets += p.c.RxPackets
		s.RxBytes += p.c.RxBytes
		for i := range s.Drops {
			s.Drops[i] += p.c.Drops[i]
		}
		p.mu.Unlock()
	}
	far := c.legs[l.other()]
	for _, p := range []*pipe{&far.rtpPipe, &far.rtcpPipe} {
		p.mu.Lock()
		s.TxPackets += p.c.TxPackets
		s.TxBytes += p.c.TxBytes
		p.mu.Unlock()
	}
	return s
}

// SetRemote sets (or, on a re-offer, replaces) what leg l's peer described.
func (c *Call) SetRemote(l LegID, rd RemoteDescription) error {
	if !l.valid() {
		return ErrLeg
	}
	if err := rd.check(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return ErrReleased
	}
	lg := c.legs[l]
	was := c.expecting()
	old := lg.remote.Load()
	if err := lg.applyRemote(&rd, old); err != nil {
		return err
	}
	c.rearmChanged(was)
	c.rebuildPipes()
	return nil
}

// expecting reports, per leg, whether its peer is expected to send: it has
// described its media, sends, and the far peer receives. Only such a leg
// can time out (a holdee may fall silent).
func (c *Call) expecting() [2]bool {
	var e [2]bool
	for i, l := range c.legs {
		rd, frd := l.remote.Load(), l.other().remote.Load()
		e[i] = rd != nil && frd != nil && rd.Direction.Sends() && frd.Direction.Receives()
	}
	return e
}

// rearmChanged restarts the timeout of legs that became expected to send.
func (c *Call) rearmChanged(was [2]bool) {
	now := c.r.now()
	for i, e := range c.expecting() {
		if e && !was[i] {
			c.legs[i].rearm(now)
		}
	}
}

func (l *leg) rearm(now time.Time) {
	l.armedAt.Store(now.UnixNano())
	l.timedOut.Store(false)
}

// Update changes leg l's direction (hold, resume) without a new description.
func (c *Call) Update(l LegID, u Update) error {
	if !l.valid() {
		return ErrLeg
	}
	if u.Direction > Inactive {
		return fmt.Errorf("%w: direction %d", ErrDescription, u.Direction)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return ErrReleased
	}
	lg := c.legs[l]
	old := lg.remote.Load()
	if old == nil {
		return ErrNoRemote
	}
	was := c.expecting()
	rd := *old
	rd.Direction = u.Direction
	lg.remote.Store(&rd)
	c.rearmChanged(was)
	c.rebuildPipes()
	return nil
}

// Release frees the call's ports; media stops at once. Releasing twice is
// not an error.
func (c *Call) Release() error { return c.r.release(c, false) }

// leg is one side of a call: the relay's ports towards one peer.
type leg struct {
	call *Call
	id   LegID
	port *port // shared or dedicated

	local LocalDescription

	// remote is the peer's description (nil until SetRemote), immutable
	// once stored; control operations replace it under call.mu.
	remote atomic.Pointer[RemoteDescription]

	// Where to send to the peer: RTP and RTCP destinations, written by
	// control (the described address) and by the reader that latched or
	// validated the peer's real address; read by the far leg's reader.
	rtpDst  atomic.Pointer[netip.AddrPort]
	rtcpDst atomic.Pointer[netip.AddrPort]

	lastRx   atomic.Int64 // unix ns of the last valid packet from the peer
	armedAt  atomic.Int64 // unix ns since when the peer is expected to send
	timedOut atomic.Bool  // the timeout event was raised
	closed   atomic.Bool

	// ICE state: touched by the readers that receive checks (one per
	// component) and by housekeeping.
	iceMu       sync.Mutex
	responder   ice.Responder
	consent     ice.Consent
	nominated   [3]netip.AddrPort // by component
	consentLost bool

	// The two directions out of this leg: packets from this leg's peer,
	// processed by the reader of the socket they arrive on.
	rtpPipe  pipe
	rtcpPipe pipe

	reported Counters // what housekeeping already handed to Metrics
}

func (l *leg) other() *leg { return l.call.legs[l.id.other()] }

func (l *leg) labels() Labels {
	lb := Labels{Security: "plain", Transport: "latch", Ports: "shared"}
	if rd := l.remote.Load(); rd != nil {
		if rd.Crypto != nil {
			lb.Security = "sdes"
		}
		if rd.ICE != nil {
			lb.Transport = "ice"
		}
	}
	if l.local.Dedicated {
		lb.Ports = "dedicated"
	}
	return lb
}

// counters sums what this leg's pipes counted: Rx and drops of packets from
// its peer, Tx of packets towards the far peer.
func (l *leg) counters() Counters {
	var s Counters
	for _, p := range []*pipe{&l.rtpPipe, &l.rtcpPipe} {
		p.mu.Lock()
		s.add(&p.c)
		p.mu.Unlock()
	}
	return s
}

func (rd *RemoteDescription) check() error {
	if !rd.Addr.IsValid() && rd.ICE == nil {
		return fmt.Errorf("%w: no address and no ICE", ErrDescription)
	}
	if rd.Direction > Inactive {
		return fmt.Errorf("%w: direction %d", ErrDescription, rd.Direction)
	}
	if rd.ICE != nil && rd.ICE.Ufrag == "" {
		return fmt.Errorf("%w: ICE without ufrag", ErrDescription)
	}
	if rd.Crypto != nil {
		c := srtpx.Crypto{Suite: rd.Crypto.Suite, Keys: rd.Crypto.Keys}
		if err := c.Check(); err != nil {
			return fmt.Errorf("%w: %w", ErrDescription, err)
		}
	}
	for _, c := range rd.Codecs {
		if c.PT > 127 {
			return fmt.Errorf("%w: payload type %d", ErrDescription, c.PT)
		}
	}
	return nil
}

// rtcpAddr is where the peer wants RTCP.
func (rd *RemoteDescription) rtcpAddr() netip.AddrPort {
	switch {
	case rd.RTCPMux:
		return rd.Addr
	case rd.RTCPAddr.IsValid():
		return rd.RTCPAddr
	case rd.Addr.IsValid():
		return netip.AddrPortFrom(rd.Addr.Addr(), rd.Addr.Port()+1)
	}
	return netip.AddrPort{}
}

func sameKeys(a, b *Crypto) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Suite != b.Suite || a.LocalMKI != b.LocalMKI || len(a.Keys) != len(b.Keys) {
		return false
	}
	for i := range a.Keys {
		if a.Keys[i] != b.Keys[i] {
			return false
		}
	}
	return true
}

// applyRemote stores rd on the leg and tells the leg's sockets what to
// expect. Called under call.mu.
func (l *leg) applyRemote(rd, old *RemoteDescription) error {
	r := l.call.r
	stored := *rd
	stored.Codecs = append([]Codec(nil), rd.Codecs...)
	l.remote.Store(&stored)

	if old != nil && old.Addr != stored.Addr {
		l.rearm(r.now()) // a new address: the peer gets a fresh start
	}

	l.iceMu.Lock()
	if stored.ICE != nil {
		l.responder.Remote = *stored.ICE
	} else {
		l.responder.Remote = ice.Credentials{}
	}
	l.iceMu.Unlock()

	if stored.ICE != nil {
		// The first description keeps the pairs checks already validated
		// (checks may outrun the answer; they proved our password). Same
		// credentials keep them too (a re-offer that only moves the default
		// candidate to the selected one changes nothing).
		if old == nil || (old.ICE != nil && *old.ICE == *stored.ICE) {
			return nil
		}
		// New ICE session: nothing is sent before a check validates a pair.
		l.rtpDst.Store(nil)
		l.rtcpDst.Store(nil)
		l.iceMu.Lock()
		l.nominated = [3]netip.AddrPort{}
		l.consent = ice.Consent{Timeout: r.o.ConsentTimeout}
		l.consentLost = false
		l.iceMu.Unlock()
	} else {
		if old != nil && old.ICE == nil && old.Addr == stored.Addr && old.rtcpAddr() == stored.rtcpAddr() {
			return nil
		}
		// Symmetric RTP: send to the described address until the peer's
		// first packet from that IP latches its real one.
		a, b := stored.Addr, stored.rtcpAddr()
		l.rtpDst.Store(&a)
		l.rtcpDst.Store(&b)
	}
	l.port.post(change{op: opRelatch, leg: l, rd: &stored})
	return nil
}

// rebuildPipes recomputes both directions' forwarding state after either
// leg changed. Called under call.mu.
func (c *Call) rebuildPipes() {
	for _, from := range c.legs {
		to := from.other()
		frd, trd := from.remote.Load(), to.remote.Load()
		forward := frd != nil && trd != nil && frd.Direction.Sends() && trd.Direction.Receives()
		var pm rtpx.PayloadMap
		if frd != nil && trd != nil && len(frd.Codecs) > 0 && len(trd.Codecs) > 0 {
			for _, fc := range frd.Codecs {
				for _, tc := range trd.Codecs {
					if fc.same(tc) {
						pm.Set(fc.PT, tc.PT)
						break
					}
				}
			}
			if pm.Len() == 0 {
				forward = false // nothing in common: nothing to pass
			}
		}
		for _, kind := range []struct {
			p    *pipe
			rtcp bool
		}{{&from.rtpPipe, false}, {&from.rtcpPipe, true}} {
			p := kind.p
			p.mu.Lock()
			p.forward = forward
			if !kind.rtcp {
				p.rw.Map = pm
			}
			// Decrypt with the peer's keys; rebuild only when they changed, so
			// rollover and replay state survive a re-offer with the same keys.
			var inCrypto *Crypto
			if frd != nil {
				inCrypto = frd.Crypto
			}
			if !sameKeys(p.inKeys, inCrypto) {
				p.in, p.inKeys = nil, nil
				if inCrypto != nil {
					ctx, err := srtpx.NewContext(inCrypto.Suite, inCrypto.Keys, srtpx.Options{})
					if err == nil {
						p.in, p.inKeys = ctx, inCrypto
					} else {
						c.r.log.Warn("relay: peer keys unusable", "call", c.id, "leg", from.id, "err", err)
						p.forward = false
					}
				}
			}
			// Encrypt for the far peer with the relay's key of the far leg.
			var outCrypto *Crypto
			if trd != nil && trd.Crypto != nil {
				k := to.local.Key
				k.MKI = trd.Crypto.LocalMKI
				outCrypto = &Crypto{Suite: trd.Crypto.Suite, Keys: []srtpx.KeyParams{k}, LocalMKI: trd.Crypto.LocalMKI}
			}
			if !sameKeys(p.outKeys, outCrypto) {
				p.out, p.outKeys = nil, nil
				if outCrypto != nil {
					ctx, err := srtpx.NewContext(outCrypto.Suite, outCrypto.Keys, srtpx.Options{})
					if err == nil {
						p.out, p.outKeys = ctx, outCrypto
					} else {
						c.r.log.Warn("relay: local key unusable", "call", c.id, "leg", to.id, "err", err)
						p.forward = false
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// pipe is one direction of one kind (RTP or RTCP) of a call: from a leg's
// peer to the far leg's peer. The reader goroutine that receives the
// packets is the only one on the packet path that takes mu, so the lock is
// uncontended except while control rebuilds the pipe.
type pipe struct {
	mu      sync.Mutex
	forward bool
	in      *srtpx.Context // the peer's keys (nil: plain RTP)
	inKeys  *Crypto
	out     *srtpx.Context // the relay's key towards the far peer (nil: plain)
	outKeys *Crypto
	rw      rtpx.Rewriter
	c       Counters
}

var errDropped = errors.New("dropped")

// process turns the datagram buf[:n] from the peer into what the far peer
// gets, in place, and returns its length. A drop is counted in the pipe
// and reported as errDropped; valid is set when the packet authenticated
// (it proves the peer alive even when it is not forwarded). On trial (the
// packet may not be the peer's at all) nothing is counted unless it
// authenticates with the peer's SRTP keys.
func (p *pipe) process(buf []byte, n int, rtcp, haveDst, trial bool) (out int, valid bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if trial && p.in == nil {
		return 0, false, errDropped
	}
	if !trial {
		p.c.RxPackets++
		p.c.RxBytes += uint64(n)
	}
	if p.in != nil {
		in := n
		var derr error
		if rtcp {
			n, derr = p.in.UnprotectRTCP(buf[:n])
		} else {
			n, derr = p.in.UnprotectRTP(buf[:n])
		}
		if derr != nil {
			if trial {
				return 0, false, errDropped
			}
			switch {
			case errors.Is(derr, srtpx.ErrReplay):
				p.c.Drops[DropReplay]++
			case errors.Is(derr, srtpx.ErrAuth), errors.Is(derr, srtpx.ErrUnknownMKI):
				p.c.Drops[DropAuth]++
			default:
				p.c.Drops[DropMalformed]++
			}
			return 0, false, errDropped
		}
		if trial {
			p.c.RxPackets++
			p.c.RxBytes += uint64(in)
		}
	} else if rtcp {
		if rtpx.ValidateRTCP(buf[:n]) != nil {
			p.c.Drops[DropMalformed]++
			return 0, false, errDropped
		}
	} else if n < rtpx.FixedHeaderSize {
		p.c.Drops[DropMalformed]++
		return 0, false, errDropped
	}
	if !p.forward {
		p.c.Drops[DropDirection]++
		return 0, true, errDropped
	}
	if !haveDst {
		p.c.Drops[DropNoPeer]++
		return 0, true, errDropped
	}
	if !rtcp {
		v, rerr := p.rw.Rewrite(buf[:n])
		if rerr != nil {
			p.c.Drops[DropMalformed]++
			return 0, true, errDropped
		}
		if v != rtpx.Forward {
			p.c.Drops[DropPayloadType]++
			return 0, true, errDropped
		}
	}
	if p.out != nil {
		var perr error
		if rtcp {
			n, perr = p.out.ProtectRTCP(buf, n)
		} else {
			n, perr = p.out.ProtectRTP(buf, n)
		}
		if perr != nil {
			p.c.Drops[DropCrypto]++
			return 0, true, errDropped
		}
	}
	p.c.TxPackets++
	p.c.TxBytes += uint64(n)
	return n, true, nil
}
