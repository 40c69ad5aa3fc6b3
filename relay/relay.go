// Package relay anchors media between the two legs of a call: it receives
// each peer's RTP and RTCP on the relay's own ports, checks and strips the
// leg's security (SDES-SRTP), rewrites payload types and sequence numbers,
// applies the far leg's security and sends the result to the far peer.
//
// Legs share a few UDP port pairs (RTP and RTCP), read and written in
// batches (recvmmsg/sendmmsg): a packet's leg is found by its source
// address, learned from a verified ICE check (the STUN USERNAME names the
// leg) or latched from the first packet of a plain-RTP peer (symmetric
// RTP). A leg can have a port pair of its own where a plain-RTP peer needs
// it. Each socket has one reader goroutine that handles its packets from
// end to end; nothing on that path allocates, and no lock is shared by two
// calls.
//
// The control API (Allocate, SetRemote, Update, Release, events) speaks a
// protocol-neutral description of each leg: no SDP, no Jingle. It is used
// in-process by the SIP side and the component; Controller is the seam for
// carrying it over the bus in split mode, and Recorder for keeping the
// allocations in the Store.
//
// It must not know about SIP, XMPP, SDP or Jingle.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/parleygw/parley/relay/ice"
	"github.com/parleygw/parley/relay/internal/batchio"
	"github.com/parleygw/parley/relay/srtpx"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrClosed         = errors.New("relay: closed")
	ErrCallExists     = errors.New("relay: call already allocated")
	ErrUnknownCall    = errors.New("relay: no such call")
	ErrReleased       = errors.New("relay: call released")
	ErrLeg            = errors.New("relay: no such leg")
	ErrNoRemote       = errors.New("relay: leg has no remote description yet")
	ErrDescription    = errors.New("relay: unusable remote description")
	ErrPortsExhausted = errors.New("relay: no free ports in the range")
	ErrOptions        = errors.New("relay: bad options")
)

// Recorder keeps allocation records where the call's owner and a restarted
// relay find them (the Store in split mode). Nil records nothing.
type Recorder interface {
	Put(ctx context.Context, a Allocation) error
	Delete(ctx context.Context, callID string) error
}

// Options configure a Relay. The zero value is a working relay on
// 127.0.0.1 with ephemeral ports, for tests and one-box demos.
type Options struct {
	// ListenIP is the address the sockets bind; zero means 127.0.0.1.
	ListenIP netip.Addr
	// PublicIP is the address advertised to peers (the 1:1 NAT address);
	// zero means ListenIP, which must then not be unspecified.
	PublicIP netip.Addr
	// PortMin..PortMax is the UDP port range (pairs start on even ports).
	// Zero PortMin means ephemeral ports chosen by the kernel.
	PortMin, PortMax uint16
	// SharedPorts is the number of shared RTP/RTCP port pairs (each with its
	// reader goroutines); zero means GOMAXPROCS.
	SharedPorts int
	// Batch is the most datagrams one system call moves; zero means 32.
	Batch int
	// IO selects the batch implementation: "" (recvmmsg/sendmmsg through
	// syscall.RawConn on Linux), "xnet" (golang.org/x/net/ipv4), "single".
	IO string
	// SocketBuffer sets SO_RCVBUF and SO_SNDBUF of shared sockets; zero
	// means 4 MiB (the kernel caps it at net.core.[rw]mem_max).
	SocketBuffer int
	// RTPTimeout ends a call whose leg, expected to send, sent no valid
	// packet for this long (EventTimeout); zero means 30 s (MS-RTP §2.1),
	// negative disables it.
	RTPTimeout time.Duration
	// ConsentTimeout is how long an ICE leg keeps consent after its peer's
	// last valid check (RFC 7675); zero means 30 s.
	ConsentTimeout time.Duration
	// Tick is the housekeeping period (timeouts, consent, metrics); zero
	// means a quarter of the shortest timeout, at most 1 s.
	Tick time.Duration
	// MetricsInterval is how often counters go to Metrics; zero means 10 s.
	MetricsInterval time.Duration
	// Metrics receives counters; nil discards them.
	Metrics Metrics
	// OnEvent receives the events an owner must act on, one at a time from
	// the housekeeping goroutine; it must not block. Nil logs them.
	OnEvent func(Event)
	// Recorder keeps allocation records; nil keeps none.
	Recorder Recorder
	// Instance names this relay in allocation records.
	Instance string
	// Logger gets the relay's logs; nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if !o.ListenIP.IsValid() {
		o.ListenIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if !o.PublicIP.IsValid() {
		if o.ListenIP.IsUnspecified() {
			return fmt.Errorf("%w: listen address %v needs a public address to advertise", ErrOptions, o.ListenIP)
		}
		o.PublicIP = o.ListenIP
	}
	if o.PortMin != 0 && (o.PortMax < o.PortMin+1) {
		return fmt.Errorf("%w: port range %d-%d", ErrOptions, o.PortMin, o.PortMax)
	}
	if o.SharedPorts <= 0 {
		o.SharedPorts = runtime.GOMAXPROCS(0)
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	if o.SocketBuffer == 0 {
		o.SocketBuffer = 4 << 20
	}
	if o.RTPTimeout == 0 {
		o.RTPTimeout = 30 * time.Second
	}
	if o.ConsentTimeout <= 0 {
		o.ConsentTimeout = 30 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
		for _, t := range []time.Duration{o.RTPTimeout, o.ConsentTimeout} {
			if t > 0 && t/4 < o.Tick {
				o.Tick = t / 4
			}
		}
		o.Tick = max(o.Tick, 10*time.Millisecond)
	}
	if o.MetricsInterval <= 0 {
		o.MetricsInterval = 10 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Relay is the media relay engine.
type Relay struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	closed     bool
	calls      map[string]*Call
	ports      *portAlloc
	shared     []*port
	nextShared int
	legs       int

	socks   sync.WaitGroup // reader goroutines
	stop    chan struct{}
	keeping sync.WaitGroup // housekeeping goroutine

	unreported Counters // unrouted drops not yet handed to Metrics
}

// New opens the shared ports and starts the relay.
func New(o Options) (*Relay, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	switch batchio.Mode(o.IO) {
	case batchio.ModeAuto, batchio.ModeMMsg, batchio.ModeXNet, batchio.ModeSingle:
	default:
		return nil, fmt.Errorf("%w: io %q", ErrOptions, o.IO)
	}
	r := &Relay{o: o, log: o.Logger, now: time.Now, calls: map[string]*Call{},
		ports: newPortAlloc(o.ListenIP, o.PortMin, o.PortMax), stop: make(chan struct{})}
	for i := 0; i < o.SharedPorts; i++ {
		p, err := r.openPort(true)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("relay: shared port pair %d: %w", i, err)
		}
		r.shared = append(r.shared, p)
	}
	r.keeping.Add(1)
	go r.housekeeping()
	r.log.Info("relay started", "listen", o.ListenIP, "public", o.PublicIP,
		"shared_ports", r.SharedAddrs(), "io", o.IO)
	return r, nil
}

// SharedAddrs are the RTP addresses of the shared port pairs.
func (r *Relay) SharedAddrs() []netip.AddrPort {
	var a []netip.AddrPort
	for _, p := range r.shared {
		a = append(a, p.rtp.addr)
	}
	return a
}

// Close releases every call (raising EventReleased for each), closes the
// sockets and waits for the goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	calls := make([]*Call, 0, len(r.calls))
	for _, c := range r.calls {
		calls = append(calls, c)
	}
	r.mu.Unlock()
	for _, c := range calls {
		_ = r.release(c, true)
	}
	close(r.stop)
	r.keeping.Wait()
	for _, p := range r.shared {
		p.close()
	}
	r.socks.Wait()
	return nil
}

// Allocate creates a call with two legs, each with its ports, ICE
// credentials and SDES key, before any peer has described its media (RFC
// 3264 §5: ready to receive before the offer goes out).
func (r *Relay) Allocate(ctx context.Context, callID, owner string, o AllocateOptions) (*Call, error) {
	if callID == "" {
		return nil, fmt.Errorf("%w: empty call ID", ErrOptions)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := r.calls[callID]; ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrCallExists, callID)
	}
	c := &Call{r: r, id: callID, owner: owner, created: r.now()}
	sharedPort := r.shared[r.nextShared%len(r.shared)]
	r.nextShared++
	r.calls[callID] = c // reserve the ID
	r.mu.Unlock()

	fail := func(err error) (*Call, error) {
		for _, l := range c.legs {
			if l != nil && l.local.Dedicated {
				l.port.close()
				r.ports.free(l.port)
			}
		}
		r.mu.Lock()
		delete(r.calls, callID)
		r.mu.Unlock()
		return nil, err
	}
	for i := range c.legs {
		l := &leg{call: c, id: LegID(i)}
		c.legs[i] = l
		if o.Legs[i].DedicatedPorts {
			p, err := r.openPort(false)
			if err != nil {
				return fail(err)
			}
			l.port = p
			l.local.Dedicated = true
		} else {
			l.port = sharedPort
		}
		creds, err := ice.NewCredentials()
		if err != nil {
			return fail(err)
		}
		key, err := srtpx.NewKeyParams()
		if err != nil {
			return fail(err)
		}
		l.responder = ice.Responder{Local: creds, Software: "parley"}
		l.consent = ice.Consent{Timeout: r.o.ConsentTimeout}
		l.local.ICE = creds
		l.local.Key = key
		l.local.Addr = netip.AddrPortFrom(r.o.PublicIP, l.port.rtp.addr.Port())
		l.local.RTCPAddr = netip.AddrPortFrom(r.o.PublicIP, l.port.rtcp.addr.Port())
		l.local.Candidates = []Candidate{
			{Foundation: "1", Component: 1, Priority: candidatePriority(1), Addr: l.local.Addr, Type: "host"},
			{Foundation: "1", Component: 2, Priority: candidatePriority(2), Addr: l.local.RTCPAddr, Type: "host"},
		}
	}
	if r.o.Recorder != nil {
		if err := r.o.Recorder.Put(ctx, c.Allocation()); err != nil {
			return fail(fmt.Errorf("relay: recording allocation: %w", err))
		}
	}
	for _, l := range c.legs {
		l.port.post(change{op: opAdd, leg: l})
	}
	r.mu.Lock()
	r.legs += 2
	r.mu.Unlock()
	r.log.Debug("relay: allocated", "call", callID, "owner", owner,
		"a", c.legs[0].local.Addr, "b", c.legs[1].local.Addr)
	return c, nil
}

// candidatePriority is RFC 8445 §5.1.2.1 for a host candidate.
func candidatePriority(component int) uint32 {
	return 126<<24 | 65535<<8 | uint32(256-component)
}

// Call returns the call allocated under id.
func (r *Relay) Call(id string) (*Call, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.calls[id]
	return c, ok
}

func (r *Relay) call(id string) (*Call, error) {
	c, ok := r.Call(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownCall, id)
	}
	return c, nil
}

// SetRemote sets leg l's remote description of call id.
func (r *Relay) SetRemote(_ context.Context, id string, l LegID, rd RemoteDescription) error {
	c, err := r.call(id)
	if err != nil {
		return err
	}
	return c.SetRemote(l, rd)
}

// Update changes leg l's direction of call id.
func (r *Relay) Update(_ context.Context, id string, l LegID, u Update) error {
	c, err := r.call(id)
	if err != nil {
		return err
	}
	return c.Update(l, u)
}

// Release frees call id. Releasing an unknown call is not an error (the
// relay may have released it already after a timeout or a restart).
func (r *Relay) Release(_ context.Context, id string) error {
	c, ok := r.Call(id)
	if !ok {
		return nil
	}
	return r.release(c, false)
}

func (r *Relay) release(c *Call, byRelay bool) error {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return nil
	}
	c.released = true
	c.mu.Unlock()
	for _, l := range c.legs {
		l.closed.Store(true)
		if l.local.Dedicated {
			l.port.close()
			r.ports.free(l.port)
		} else {
			l.port.post(change{op: opRemove, leg: l})
		}
		if d := l.counters(); true {
			delta := d.sub(&l.reported)
			if !delta.zero() {
				r.o.Metrics.Add(l.labels(), delta)
			}
		}
	}
	r.mu.Lock()
	if r.calls[c.id] == c {
		delete(r.calls, c.id)
		r.legs -= 2
	}
	r.mu.Unlock()
	if r.o.Recorder != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.o.Recorder.Delete(ctx, c.id); err != nil {
			r.log.Warn("relay: forgetting allocation", "call", c.id, "err", err)
		}
		cancel()
	}
	if byRelay {
		r.emit(Event{Type: EventReleased, CallID: c.id, Owner: c.owner, At: r.now(), Detail: "relay shutting down"})
	}
	r.log.Debug("relay: released", "call", c.id)
	return nil
}

func (r *Relay) emit(e Event) {
	if r.o.OnEvent != nil {
		r.o.OnEvent(e)
		return
	}
	r.log.Warn("relay event with no handler", "type", e.Type, "call", e.CallID, "leg", e.Leg, "detail", e.Detail)
}

// housekeeping raises timeouts, withdraws lost consent and reports metrics.
func (r *Relay) housekeeping() {
	defer r.keeping.Done()
	t := time.NewTicker(r.o.Tick)
	defer t.Stop()
	lastMetrics := r.now()
	for {
		select {
		case <-r.stop:
			r.reportMetrics()
			return
		case <-t.C:
		}
		now := r.now()
		r.mu.Lock()
		calls := make([]*Call, 0, len(r.calls))
		for _, c := range r.calls {
			calls = append(calls, c)
		}
		r.mu.Unlock()
		for _, c := range calls {
			r.checkCall(c, now)
		}
		if now.Sub(lastMetrics) >= r.o.MetricsInterval {
			lastMetrics = now
			r.reportMetrics()
		}
	}
}

func (r *Relay) checkCall(c *Call, now time.Time) {
	expecting := c.expecting()
	for i, l := range c.legs {
		if l.closed.Load() {
			return
		}
		rd := l.remote.Load()
		if rd == nil {
			continue
		}
		if r.o.RTPTimeout > 0 && expecting[i] && !l.timedOut.Load() {
			last := max(l.lastRx.Load(), l.armedAt.Load())
			if idle := now.Sub(time.Unix(0, last)); idle >= r.o.RTPTimeout {
				l.timedOut.Store(true)
				r.emit(Event{Type: EventTimeout, CallID: c.id, Owner: c.owner, Leg: l.id, At: now,
					Detail: fmt.Sprintf("no media from leg %s for %v", l.id, idle.Round(time.Millisecond))})
			}
		}
		if rd.ICE != nil {
			l.iceMu.Lock()
			lost := !l.consentLost && !l.consent.Last().IsZero() && !l.consent.Granted(now)
			if lost {
				l.consentLost = true
				l.rtpDst.Store(nil)
				l.rtcpDst.Store(nil)
			}
			l.iceMu.Unlock()
			if lost {
				r.emit(Event{Type: EventConsentLost, CallID: c.id, Owner: c.owner, Leg: l.id, At: now,
					Detail: "no ICE consent check for " + r.o.ConsentTimeout.String()})
			}
		}
	}
}

func (r *Relay) reportMetrics() {
	r.mu.Lock()
	calls := make([]*Call, 0, len(r.calls))
	for _, c := range r.calls {
		calls = append(calls, c)
	}
	nc, nl := len(r.calls), r.legs
	r.mu.Unlock()
	r.o.Metrics.Active(nc, nl)
	for _, c := range calls {
		c.mu.Lock()
		if !c.released {
			for _, l := range c.legs {
				cur := l.counters()
				delta := cur.sub(&l.reported)
				l.reported = cur
				if !delta.zero() {
					r.o.Metrics.Add(l.labels(), delta)
				}
			}
		}
		c.mu.Unlock()
	}
	var un Counters
	for _, p := range r.shared {
		un.Drops[DropUnrouted] += p.rtp.unrouted.Load() + p.rtcp.unrouted.Load()
		un.Drops[DropMalformed] += p.rtp.malformed.Load() + p.rtcp.malformed.Load()
		un.Drops[DropSend] += p.rtp.sendErrs.Load() + p.rtcp.sendErrs.Load()
	}
	delta := un.sub(&r.unreported)
	r.unreported = un
	if !delta.zero() {
		r.o.Metrics.Add(Labels{Security: "none", Transport: "none", Ports: "shared"}, delta)
	}
}

// Controller is the control API by call ID, as the SIP side and the
// component use it; in split mode a bus client implements it too.
type Controller interface {
	Allocate(ctx context.Context, callID, owner string, o AllocateOptions) (Allocation, error)
	SetRemote(ctx context.Context, callID string, l LegID, rd RemoteDescription) error
	Update(ctx context.Context, callID string, l LegID, u Update) error
	Release(ctx context.Context, callID string) error
}

// Controller returns the relay's in-process Controller.
func (r *Relay) Controller() Controller { return controller{r} }

type controller struct{ r *Relay }

func (c controller) Allocate(ctx context.Context, id, owner string, o AllocateOptions) (Allocation, error) {
	call, err := c.r.Allocate(ctx, id, owner, o)
	if err != nil {
		return Allocation{}, err
	}
	return call.Allocation(), nil
}

func (c controller) SetRemote(ctx context.Context, id string, l LegID, rd RemoteDescription) error {
	return c.r.SetRemote(ctx, id, l, rd)
}

func (c controller) Update(ctx context.Context, id string, l LegID, u Update) error {
	return c.r.Update(ctx, id, l, u)
}

func (c controller) Release(ctx context.Context, id string) error { return c.r.Release(ctx, id) }

var _ Controller = controller{}
