package component

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
)

// errStanzaTooLarge ends a stream whose current stanza grew past the hard
// limit (see countingConn).
var errStanzaTooLarge = errors.New("stanza larger than the hard limit")

// countingConn counts the bytes read from the XMPP server so that one
// stanza can be bounded. mellium's session reads through encoding/xml with
// no size limit of its own, so the bound is kept here, at two levels:
//
//   - soft (maxStanza): the router measures the bytes read while it decodes
//     a stanza and answers one that is larger with a policy-violation stanza
//     error; the stream stays up.
//   - hard (limit, about twice maxStanza): if the bytes read since the last
//     mark exceed it, Read fails, which ends the stream (it is then
//     reconnected). This bounds the memory encoding/xml can be made to use
//     by one stanza, such as a huge text node it would buffer whole.
//
// The router marks at the start of every stanza it handles and the session
// marks after every IQ response it waits for, so the distance since the
// last mark is the size of the stanza being read (give or take the
// decoder's 4 KiB read buffer).
type countingConn struct {
	net.Conn
	limit int64
	n     atomic.Int64
	last  atomic.Int64
}

func newCountingConn(c net.Conn, limit int64) *countingConn {
	return &countingConn{Conn: c, limit: limit}
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.limit > 0 && c.n.Load()-c.last.Load() > c.limit {
		return 0, fmt.Errorf("read from XMPP server: %w (%d bytes)", errStanzaTooLarge, c.limit)
	}
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// count is the number of bytes read so far.
func (c *countingConn) count() int64 { return c.n.Load() }

// mark records that a new stanza starts about here.
func (c *countingConn) mark() { c.last.Store(c.n.Load()) }
