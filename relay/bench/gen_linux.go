package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/srtp/v2"
	"golang.org/x/sys/unix"

	"github.com/parleygw/parley/relay"
	"github.com/parleygw/parley/relay/internal/batchio"
	"github.com/parleygw/parley/relay/srtpx"
)

const (
	slots     = 20  // a 20 ms packet period cut into 1 ms slots
	ring      = 256 // send times kept per stream (5 s at 50 pps)
	pktSize   = 172 // RTP header + 160 bytes of G.711
	slabSize  = 192 // room for the SRTP tag
	bucketDur = 10 * time.Microsecond
	buckets   = 100000 // 1 s of latency histogram
	grace     = 300 * time.Millisecond
)

type generator struct {
	cfg  Config
	udp  [2]*net.UDPConn
	conn [2]batchio.Conn
	port [2]uint16
}

func newGenerator(cfg Config) (*generator, error) {
	g := &generator{cfg: cfg}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Bound to the unspecified address so that every 127.10.x.y
			// endpoint lands here, but only for packets on the loopback
			// device: nothing from outside reaches the generator.
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo")
			if serr == nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 32<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for i := range g.udp {
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:0")
		if err != nil {
			g.close()
			return nil, fmt.Errorf("bench: generator socket (needs CAP_NET_RAW for SO_BINDTODEVICE): %w", err)
		}
		g.udp[i] = pc.(*net.UDPConn)
		_ = g.udp[i].SetReadBuffer(32 << 20)
		_ = g.udp[i].SetWriteBuffer(32 << 20)
		if g.conn[i], err = batchio.New(g.udp[i], batchio.ModeMMsg, 64); err != nil {
			g.close()
			return nil, err
		}
		g.port[i] = g.conn[i].LocalAddr().Port()
	}
	return g, nil
}

func (g *generator) close() {
	for _, c := range g.udp {
		if c != nil {
			c.Close()
		}
	}
}

// endpoint is call i's address on side d (0: A, 1: B).
func (g *generator) endpoint(i, d int) netip.AddrPort {
	return netip.AddrPortFrom(endpointIP(i), g.port[d])
}

func endpointIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 10, byte(i / 250), byte(i%250 + 1)})
}

// stream identifies call i's direction d (0: A sends to B) in the SSRC.
func ssrcOf(i, d int) uint32 { return 0x10000 + uint32(i*2+d) }

// step measures n calls directly (r nil) or through r.
func (g *generator) step(ctx context.Context, n int, r *relay.Relay) (Step, error) {
	cfg := g.cfg
	st := Step{Calls: n}
	// Start from a clean heap: the last step's pre-encrypted packets (a
	// few hundred MB at thousands of calls) must not be collected and
	// returned to the OS while this one is measured.
	runtime.GC()
	debug.FreeOSMemory()
	if n > 250*250 {
		return st, fmt.Errorf("bench: at most %d calls", 250*250)
	}
	// dst[d][i]: where call i's side d sends.
	var dst [2][]netip.AddrPort
	dst[0], dst[1] = make([]netip.AddrPort, n), make([]netip.AddrPort, n)
	var keys [2][]srtpx.KeyParams
	if cfg.Secure {
		keys[0], keys[1] = make([]srtpx.KeyParams, n), make([]srtpx.KeyParams, n)
		for d := range keys {
			for i := range keys[d] {
				keys[d][i], _ = srtpx.NewKeyParams()
			}
		}
	}
	if r == nil {
		for i := 0; i < n; i++ {
			dst[0][i], dst[1][i] = g.endpoint(i, 1), g.endpoint(i, 0)
		}
	} else {
		ids := make([]string, 0, n)
		defer func() {
			for _, id := range ids {
				_ = r.Release(context.Background(), id)
			}
		}()
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("bench-%d", i)
			call, err := r.Allocate(ctx, id, "bench", relay.AllocateOptions{})
			if err != nil {
				return st, fmt.Errorf("bench: allocate call %d: %w", i, err)
			}
			ids = append(ids, id)
			for d, leg := range []relay.LegID{relay.LegA, relay.LegB} {
				rd := relay.RemoteDescription{Addr: g.endpoint(i, d), RTCPMux: true}
				if cfg.Secure {
					rd.Crypto = &relay.Crypto{Suite: srtpx.AES_CM_128_HMAC_SHA1_80, Keys: []srtpx.KeyParams{keys[d][i]}}
				}
				if err := call.SetRemote(leg, rd); err != nil {
					return st, err
				}
				dst[d][i] = call.Local(leg).Addr
			}
		}
	}

	period := time.Second / time.Duration(cfg.PPS)
	slot := period / slots
	total := int((cfg.Warmup + cfg.Step) / period)
	var slab [2][]byte // Secure: every packet, pre-encrypted
	if cfg.Secure {
		var err error
		if slab, err = encryptAll(n, total, keys); err != nil {
			return st, err
		}
	}

	sendAt := make([]atomic.Int64, n*2*ring)
	runtime.GC() // the slab is live now; collect the rest before timing
	base := time.Now()
	measureFrom := int64(cfg.Warmup)
	measureTo := int64(cfg.Warmup + cfg.Step)
	since := func() int64 { return int64(time.Since(base)) }

	// Receivers: side d's socket gets the other side's packets.
	var wg sync.WaitGroup
	hists := [2][]uint32{make([]uint32, buckets+1), make([]uint32, buckets+1)}
	var got [2]uint64
	var maxLat [2]int64
	for d := 0; d < 2; d++ {
		_ = g.udp[d].SetReadDeadline(base.Add(cfg.Warmup + cfg.Step + grace))
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			ms := make([]batchio.Msg, 64)
			for i := range ms {
				ms[i].Buf = make([]byte, 1500)
			}
			h := hists[d]
			for {
				k, err := g.conn[d].ReadBatch(ms)
				if err != nil {
					return // deadline: the step is over
				}
				now := since()
				for j := 0; j < k; j++ {
					b := ms[j].Buf[:ms[j].N]
					if len(b) < 12 {
						continue
					}
					s := int(binary.BigEndian.Uint32(b[8:])) - 0x10000
					if s < 0 || s >= 2*n || s%2 == d {
						continue // not a stream towards this side
					}
					seq := int(binary.BigEndian.Uint16(b[2:]))
					t := sendAt[s*ring+seq%ring].Load()
					if t < measureFrom || t >= measureTo {
						continue
					}
					lat := now - t
					got[d]++
					maxLat[d] = max(maxLat[d], lat)
					h[min(int(lat/int64(bucketDur)), buckets)]++
				}
				for j := 0; j < k; j++ {
					ms[j].Buf = ms[j].Buf[:cap(ms[j].Buf)]
				}
			}
		}(d)
	}

	// Senders, one per side (each socket's sendmmsg also pays the kernel's
	// loopback delivery): slot k sends the calls i ≡ k (mod slots).
	var sentBy [2]uint64
	var lagsBy [2][]uint32 // ms histograms of lateness
	var errBy [2]error
	var sw sync.WaitGroup
	for d := 0; d < 2; d++ {
		lagsBy[d] = make([]uint32, 1001)
		sw.Add(1)
		go func(d int) {
			defer sw.Done()
			msgs := make([]batchio.Msg, 0, n/slots+1)
			plain := make([][]byte, n/slots+1)
			for i := range plain {
				plain[i] = make([]byte, pktSize)
				plain[i][0] = 0x80
			}
			for k := 0; k < total*slots && ctx.Err() == nil; k++ {
				due := time.Duration(k) * slot
				if wait := due - time.Since(base); wait > 0 {
					time.Sleep(wait)
				}
				lag := time.Since(base) - due
				if k*int(slot) >= int(cfg.Warmup) {
					lagsBy[d][min(int(lag/time.Millisecond), 1000)]++
				}
				seq := k / slots
				msgs = msgs[:0]
				j := 0
				for i := k % slots; i < n; i += slots {
					var b []byte
					if cfg.Secure {
						off := ((i * total) + seq) * slabSize
						b = slab[d][off : off+slabSize]
						b = b[:binary.BigEndian.Uint16(b[slabSize-2:])]
					} else {
						b = plain[j]
						binary.BigEndian.PutUint16(b[2:], uint16(seq))
						binary.BigEndian.PutUint32(b[4:], uint32(seq*160))
						binary.BigEndian.PutUint32(b[8:], ssrcOf(i, d))
					}
					j++
					msgs = append(msgs, batchio.Msg{Buf: b, N: len(b), Addr: dst[d][i], Src: endpointIP(i)})
				}
				now := since()
				for _, m := range msgs {
					s := int(binary.BigEndian.Uint32(m.Buf[8:])) - 0x10000
					sendAt[s*ring+seq%ring].Store(now)
				}
				if _, err := g.conn[d].WriteBatch(msgs); err != nil && errBy[d] == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					errBy[d] = err
				}
				if now >= measureFrom && now < measureTo {
					sentBy[d] += uint64(len(msgs))
				}
			}
		}(d)
	}
	sw.Wait()
	sent := sentBy[0] + sentBy[1]
	lags := make([]uint32, 1001)
	for d := range lagsBy {
		for i, c := range lagsBy[d] {
			lags[i] += c
		}
	}
	sendErr := errBy[0]
	if sendErr == nil {
		sendErr = errBy[1]
	}
	wg.Wait()
	if ctx.Err() != nil {
		return st, ctx.Err()
	}

	st.Sent = sent
	st.Received = got[0] + got[1]
	if sent > 0 {
		st.Loss = 1 - float64(st.Received)/float64(sent)
		if st.Loss < 0 {
			st.Loss = 0
		}
	}
	h := make([]uint32, buckets+1)
	for d := range hists {
		for i, c := range hists[d] {
			h[i] += c
		}
	}
	st.P50 = quantile(h, 0.50)
	st.P99 = quantile(h, 0.99)
	st.Max = time.Duration(max(maxLat[0], maxLat[1]))
	st.SendLagP99 = time.Duration(quantileIdx(lags, 0.99)) * time.Millisecond
	if want := float64(2*n) * float64(cfg.Step) / float64(period); want > 0 {
		st.Offered = float64(sent) / want
	}
	switch {
	case sendErr != nil:
		st.Why = "send: " + sendErr.Error()
	case st.Offered < minOffered || st.SendLagP99 > maxLag:
		st.Why = fmt.Sprintf("generator fell behind (%.1f%% of the packet rate, p99 %v late)", 100*st.Offered, st.SendLagP99)
	case st.Loss >= cfg.MaxLoss:
		st.Why = fmt.Sprintf("loss %.3f%%", 100*st.Loss)
	case st.P99 > cfg.MaxP99:
		st.Why = "p99 " + st.P99.String()
	default:
		st.Pass = true
	}
	return st, nil
}

// encryptAll makes every packet of a step, SRTP-protected with each
// sender's own key; the slot's last two bytes hold the packet length.
func encryptAll(n, total int, keys [2][]srtpx.KeyParams) ([2][]byte, error) {
	var slab [2][]byte
	plain := make([]byte, pktSize)
	plain[0] = 0x80
	for d := 0; d < 2; d++ {
		slab[d] = make([]byte, n*total*slabSize)
		for i := 0; i < n; i++ {
			k := keys[d][i]
			ctx, err := srtp.CreateContext(k.Key(), k.Salt(), srtp.ProtectionProfileAes128CmHmacSha1_80)
			if err != nil {
				return slab, err
			}
			for seq := 0; seq < total; seq++ {
				binary.BigEndian.PutUint16(plain[2:], uint16(seq))
				binary.BigEndian.PutUint32(plain[4:], uint32(seq*160))
				binary.BigEndian.PutUint32(plain[8:], ssrcOf(i, d))
				off := (i*total + seq) * slabSize
				out, err := ctx.EncryptRTP(slab[d][off:off:off+slabSize-2], plain, nil)
				if err != nil {
					return slab, err
				}
				binary.BigEndian.PutUint16(slab[d][off+slabSize-2:], uint16(len(out)))
			}
		}
	}
	return slab, nil
}

func quantile(h []uint32, q float64) time.Duration {
	return time.Duration(quantileIdx(h, q)) * bucketDur
}

func quantileIdx(h []uint32, q float64) int {
	var total uint64
	for _, c := range h {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var acc uint64
	for i, c := range h {
		acc += uint64(c)
		if acc > want {
			return i + 1 // upper edge of the bucket
		}
	}
	return len(h)
}
