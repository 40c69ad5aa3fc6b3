// Package loadgen holds fast load generators for Parley's benchmark
// (integration/cmd/bench): an XMPP c2s client and an echo component written
// directly on encoding/xml, SIP user agents on sipgo, and a driver that
// offers load either closed-loop (a window of messages in flight) or
// open-loop (paced at a fixed rate) and measures delivery and latency.
//
// Every message body carries a phase tag, a sequence number and the send
// time (nanoseconds on a monotonic clock shared by sender and receiver in
// the same process), so any receiver can compute one-way latency and tell
// losses, duplicates and stragglers from an earlier phase apart.
package loadgen

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Clock is a monotonic clock shared by the senders and receivers of one
// process: Now is the time since the clock was made, in nanoseconds.
type Clock struct{ start time.Time }

// NewClock starts a clock.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the monotonic time since the clock started, in nanoseconds.
func (c *Clock) Now() int64 { return int64(time.Since(c.start)) }

// bodyPrefix starts every generated body; receivers ignore other bodies.
const bodyPrefix = "lg."

// AppendBody appends a message body "lg.<tag>.<seq>.<sentNs>", padded with
// a space and 'x's to at least size bytes, to dst.
func AppendBody(dst []byte, tag uint32, seq uint64, sentNs int64, size int) []byte {
	start := len(dst)
	dst = append(dst, bodyPrefix...)
	dst = strconv.AppendUint(dst, uint64(tag), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, sentNs, 10)
	if n := size - (len(dst) - start); n > 1 {
		dst = append(dst, ' ')
		for i := 1; i < n; i++ {
			dst = append(dst, 'x')
		}
	}
	return dst
}

// ParseBody reads a body made by AppendBody. Leading and trailing white
// space is ignored (a gateway may add a final newline).
func ParseBody(b []byte) (tag uint32, seq uint64, sentNs int64, ok bool) {
	b = bytes.TrimSpace(b)
	if !bytes.HasPrefix(b, []byte(bodyPrefix)) {
		return 0, 0, 0, false
	}
	b = b[len(bodyPrefix):]
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	var fields [3][]byte
	for i := 0; i < 2; i++ {
		j := bytes.IndexByte(b, '.')
		if j < 0 {
			return 0, 0, 0, false
		}
		fields[i], b = b[:j], b[j+1:]
	}
	fields[2] = b
	t, err := parseUint(fields[0], 32)
	if err != nil {
		return 0, 0, 0, false
	}
	s, err := parseUint(fields[1], 64)
	if err != nil {
		return 0, 0, 0, false
	}
	ns, err := parseUint(fields[2], 63)
	if err != nil {
		return 0, 0, 0, false
	}
	return uint32(t), s, int64(ns), true
}

// AppendID appends a stanza/transaction id "<tag>-<seq>" to dst.
func AppendID(dst []byte, tag uint32, seq uint64) []byte {
	dst = strconv.AppendUint(dst, uint64(tag), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, seq, 10)
}

// ParseID reads an id made by AppendID.
func ParseID(s string) (tag uint32, seq uint64, ok bool) {
	i := strings.IndexByte(s, '-')
	if i < 0 {
		return 0, 0, false
	}
	t, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil {
		return 0, 0, false
	}
	q, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return uint32(t), q, true
}

// parseUint parses decimal digits without allocating.
func parseUint(b []byte, bits int) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, strconv.ErrSyntax
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, strconv.ErrRange
		}
		n = n*10 + d
	}
	if bits < 64 && n >= 1<<uint(bits) {
		return 0, strconv.ErrRange
	}
	return n, nil
}
