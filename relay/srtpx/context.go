package srtpx

// srtcpTagLen: both suites authenticate SRTCP with an 80-bit tag (RFC 4568 §6.2).
const srtcpTagLen = 10

// Backend selects the SRTP implementation behind a Context.
type Backend string

// The implementations. Both pass RFC 3711 Appendix B, libsrtp's reference
// packet and round trips with independent pion/srtp contexts.
const (
	// BackendNative is this package's AES-CM/HMAC-SHA1 transform: nothing
	// allocated per packet, about three times faster than pion/srtp v2.
	BackendNative Backend = ""
	// BackendPion is pion/srtp v2 (MKI through its MasterKeyIndicator
	// option); it allocates a few small buffers per packet.
	BackendPion Backend = "pion"
)

// Options tunes a Context. The zero value is what the relay wants.
type Options struct {
	// ReplayWindow is the replay window in packets for unprotecting
	// (RFC 3711 §3.3.2); 0 means 128, negative disables replay checks.
	ReplayWindow int
	// Backend picks the implementation; zero is BackendNative.
	Backend Backend
}

// transform is one implementation of the four in-place operations; the
// Context around it checks sizes and counts key usage.
type transform interface {
	protectRTP(buf []byte, n int) (int, error)
	unprotectRTP(b []byte) (int, error)
	protectRTCP(buf []byte, n int) (int, error)
	unprotectRTCP(b []byte) (int, error)
}

// Context is one direction of SDES-SRTP on one leg: either the peer's keys
// (Unprotect*) or ours (Protect*). Every operation works in place on the
// caller's buffer.
//
// The RTP methods and the RTCP methods use separate state, so RTP and RTCP
// may be handled by different goroutines; each of the two families must be
// used by one goroutine at a time.
type Context struct {
	suite    Suite
	mkiLen   int
	lifetime uint64 // 0: the suite's own limits
	t        transform
	rtpUsed  uint64
	rtcpUsed uint64
}

// NewContext builds a context from a suite and the master keys of one
// crypto attribute. Protecting uses keys[0] (and its MKI); unprotecting
// accepts any of the keys, told apart by MKI.
func NewContext(suite Suite, keys []KeyParams, o Options) (*Context, error) {
	c := Crypto{Suite: suite, Keys: keys}
	if err := c.Check(); err != nil {
		return nil, err
	}
	win := o.ReplayWindow
	if win == 0 {
		win = 128
	}
	ctx := &Context{suite: suite, mkiLen: int(keys[0].MKI.Len), lifetime: keys[0].Lifetime}
	var err error
	switch o.Backend {
	case BackendNative:
		ctx.t, err = newNative(suite, keys, win)
	case BackendPion:
		ctx.t, err = newPion(suite, keys, win)
	default:
		return nil, ErrUnknownSuite
	}
	if err != nil {
		return nil, err
	}
	return ctx, nil
}

// Suite is the context's crypto suite.
func (c *Context) Suite() Suite { return c.suite }

// OverheadRTP is how many bytes ProtectRTP adds (MKI and tag).
func (c *Context) OverheadRTP() int { return c.mkiLen + c.suite.TagLen() }

// OverheadRTCP is how many bytes ProtectRTCP adds (index, MKI and tag).
func (c *Context) OverheadRTCP() int { return 4 + c.mkiLen + srtcpTagLen }

func (c *Context) spend(used *uint64) error {
	if c.lifetime != 0 && *used >= c.lifetime {
		return ErrKeyExpired
	}
	*used++
	return nil
}

// ProtectRTP encrypts and authenticates the RTP packet buf[:n] in place and
// returns the SRTP packet's length; cap(buf) must leave OverheadRTP bytes.
func (c *Context) ProtectRTP(buf []byte, n int) (int, error) {
	if n > len(buf) || n < 12 {
		return 0, ErrShortPacket
	}
	if cap(buf) < n+c.OverheadRTP() {
		return 0, ErrBufferSize
	}
	if err := c.spend(&c.rtpUsed); err != nil {
		return 0, err
	}
	return c.t.protectRTP(buf, n)
}

// UnprotectRTP authenticates and decrypts the SRTP packet b in place and
// returns the RTP packet's length.
func (c *Context) UnprotectRTP(b []byte) (int, error) {
	if len(b) < 12+c.OverheadRTP() {
		return 0, ErrShortPacket
	}
	n, err := c.t.unprotectRTP(b)
	if err != nil {
		return 0, err
	}
	if err := c.spend(&c.rtpUsed); err != nil {
		return 0, err
	}
	return n, nil
}

// ProtectRTCP turns the RTCP compound packet buf[:n] into SRTCP in place;
// cap(buf) must leave OverheadRTCP bytes.
func (c *Context) ProtectRTCP(buf []byte, n int) (int, error) {
	if n > len(buf) || n < 8 {
		return 0, ErrShortPacket
	}
	if cap(buf) < n+c.OverheadRTCP() {
		return 0, ErrBufferSize
	}
	if err := c.spend(&c.rtcpUsed); err != nil {
		return 0, err
	}
	return c.t.protectRTCP(buf, n)
}

// UnprotectRTCP authenticates and decrypts the SRTCP packet b in place and
// returns the RTCP packet's length.
func (c *Context) UnprotectRTCP(b []byte) (int, error) {
	if len(b) < 8+c.OverheadRTCP() {
		return 0, ErrShortPacket
	}
	n, err := c.t.unprotectRTCP(b)
	if err != nil {
		return 0, err
	}
	if err := c.spend(&c.rtcpUsed); err != nil {
		return 0, err
	}
	return n, nil
}
