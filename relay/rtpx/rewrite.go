package rtpx

import "encoding/binary"

// PayloadMap maps the payload types one leg sends to the ones the other leg
// expects. Its zero value maps every payload type to itself; once one entry
// is set, only mapped payload types pass and the rest are dropped (a codec
// the far leg did not negotiate must not reach it).
type PayloadMap struct {
	to  [128]uint8
	set [2]uint64 // bit i: payload type i is mapped
	n   int
}

// Set maps payload type in to out (both 0..127).
func (m *PayloadMap) Set(in, out uint8) {
	in, out = in&0x7f, out&0x7f
	if m.set[in>>6]&(1<<(in&63)) == 0 {
		m.n++
	}
	m.set[in>>6] |= 1 << (in & 63)
	m.to[in] = out
}

// Len is the number of mapped payload types (0: identity).
func (m *PayloadMap) Len() int { return m.n }

// Lookup returns what in becomes and whether it may pass.
func (m *PayloadMap) Lookup(in uint8) (uint8, bool) {
	in &= 0x7f
	if m.n == 0 {
		return in, true
	}
	if m.set[in>>6]&(1<<(in&63)) == 0 {
		return 0, false
	}
	return m.to[in], true
}

// Verdict is what Rewrite decided for a packet.
type Verdict uint8

// Rewrite's outcomes.
const (
	Forward     Verdict = iota // send the (rewritten) packet on
	DropPayload                // payload type not negotiated on the far leg
)

// Rewriter rewrites the RTP packets of one direction of a call in place:
// payload type through Map, SSRC kept, sequence numbers shifted so that the
// packets the rewriter drops leave no gap the receiver would count as loss.
// Its zero value forwards every packet unchanged. A Rewriter is used by one
// goroutine at a time.
type Rewriter struct {
	Map PayloadMap

	// seqDelta is subtracted from every forwarded sequence number: the
	// number of packets dropped so far (mod 2^16).
	seqDelta uint16
	// haveSeq/lastSeq: highest input sequence number seen, to tell a
	// reordered packet (older than a drop) from a new one.
	haveSeq bool
	lastSeq uint16
	// dropSeq is the input sequence number of the latest drop; packets
	// older than it were sent before the drop and keep the older delta.
	dropSeq uint16
	dropped bool
}

// Rewrite applies the rewriter to the RTP packet b (at least a fixed
// header, as Fields checks) and tells whether to forward it.
func (r *Rewriter) Rewrite(b []byte) (Verdict, error) {
	if len(b) < FixedHeaderSize {
		return DropPayload, ErrShortPacket
	}
	if b[0]>>6 != 2 {
		return DropPayload, ErrVersion
	}
	seq := binary.BigEndian.Uint16(b[2:])
	newer := !r.haveSeq || int16(seq-r.lastSeq) > 0
	if newer {
		r.haveSeq, r.lastSeq = true, seq
	}
	out, ok := r.Map.Lookup(b[1] & 0x7f)
	if !ok {
		if newer {
			r.seqDelta++
			r.dropSeq, r.dropped = seq, true
		}
		return DropPayload, nil
	}
	b[1] = b[1]&0x80 | out
	delta := r.seqDelta
	if r.dropped && !newer && int16(seq-r.dropSeq) < 0 {
		// A late packet sent before the last drop: it belongs before the
		// gap the drop closed.
		delta--
	}
	if delta != 0 {
		binary.BigEndian.PutUint16(b[2:], seq-delta)
	}
	return Forward, nil
}

// Reset forgets sequence state (the sender started a new stream).
func (r *Rewriter) Reset() { r.seqDelta, r.haveSeq, r.dropped = 0, false, false }
