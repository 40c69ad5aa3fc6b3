package relay

// DropReason says why the relay did not forward a packet.
type DropReason uint8

// Drop reasons; a bounded label set for metrics.
const (
	DropUnrouted    DropReason = iota // from an address no leg expects
	DropMalformed                     // not RTP/RTCP/STUN, or broken headers
	DropAuth                          // SRTP authentication failed / unknown MKI
	DropReplay                        // SRTP replay
	DropPayloadType                   // payload type the far leg did not negotiate
	DropDirection                     // hold / direction forbids forwarding
	DropNoPeer                        // far leg has no destination yet (no answer, no ICE check)
	DropCrypto                        // protecting for the far leg failed (key lifetime, size)
	DropSend                          // the kernel refused the datagram
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"unrouted", "malformed", "auth", "replay", "payload-type", "direction", "no-peer", "crypto", "send"}

func (d DropReason) String() string {
	if d < NumDropReasons {
		return dropNames[d]
	}
	return "other"
}

// Counters are packet and byte counts; Rx counts what a leg's peer sent the
// relay, Tx what the relay sent to that peer.
type Counters struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	Drops              [NumDropReasons]uint64
}

func (c *Counters) add(o *Counters) {
	c.RxPackets += o.RxPackets
	c.RxBytes += o.RxBytes
	c.TxPackets += o.TxPackets
	c.TxBytes += o.TxBytes
	for i := range c.Drops {
		c.Drops[i] += o.Drops[i]
	}
}

func (c *Counters) sub(o *Counters) Counters {
	d := Counters{RxPackets: c.RxPackets - o.RxPackets, RxBytes: c.RxBytes - o.RxBytes,
		TxPackets: c.TxPackets - o.TxPackets, TxBytes: c.TxBytes - o.TxBytes}
	for i := range d.Drops {
		d.Drops[i] = c.Drops[i] - o.Drops[i]
	}
	return d
}

func (c *Counters) zero() bool { return *c == Counters{} }

// Labels classify a leg for metrics; every field has a handful of values.
type Labels struct {
	Security  string // "plain", "sdes"; "none" for unrouted packets
	Transport string // "ice", "latch"; "none" for unrouted packets
	Ports     string // "shared", "dedicated"
}

// Metrics receives the relay's counters. The relay keeps per-leg counters on
// its packet path and hands increases over from its housekeeping goroutine
// (every MetricsInterval and when a call is released), so an implementation
// (Prometheus counters by these labels) is never called per packet.
type Metrics interface {
	// Add reports increases of the counters of legs with these labels.
	Add(l Labels, delta Counters)
	// Active reports the number of calls and legs allocated now.
	Active(calls, legs int)
}

type nopMetrics struct{}

func (nopMetrics) Add(Labels, Counters) {}
func (nopMetrics) Active(int, int)      {}
