package relay_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pion/srtp/v2"
	"github.com/pion/stun"

	"github.com/parleygw/parley/relay"
	"github.com/parleygw/parley/relay/ice"
	"github.com/parleygw/parley/relay/internal/media"
	"github.com/parleygw/parley/relay/srtpx"
)

var (
	pcmu     = relay.Codec{PT: 0, Name: "PCMU", ClockRate: 8000}
	dtmf101  = relay.Codec{PT: 101, Name: "telephone-event", ClockRate: 8000}
	dtmf96   = relay.Codec{PT: 96, Name: "telephone-event", ClockRate: 8000}
	testOpts = relay.Options{SharedPorts: 2, Logger: slog.New(slog.DiscardHandler)}
)

func newRelay(t *testing.T, o relay.Options) *relay.Relay {
	t.Helper()
	r, err := relay.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// peer is a test endpoint: a UDP socket on loopback and, for an SRTP leg,
// independent pion/srtp contexts (its own key to send, the relay's to read).
type peer struct {
	t    testing.TB
	conn *net.UDPConn
	addr netip.AddrPort
	tx   *srtp.Context
	rx   *srtp.Context
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// useSRTP makes p an SDES peer: it sends under its own key (with mki, as
// Lync does) and reads what the relay sends under the relay's key for the
// leg. It returns the Crypto the owner would give the relay.
func (p *peer) useSRTP(relayKey srtpx.KeyParams, mki srtpx.MKI) *relay.Crypto {
	p.t.Helper()
	own, _ := srtpx.NewKeyParams()
	own.MKI = mki
	own.Lifetime = 1 << 31
	opts := []srtp.ContextOption{}
	if mki.Len > 0 {
		opts = append(opts, srtp.MasterKeyIndicator(mki.Bytes()))
	}
	var err error
	if p.tx, err = srtp.CreateContext(own.Key(), own.Salt(), srtp.ProtectionProfileAes128CmHmacSha1_80, opts...); err != nil {
		p.t.Fatal(err)
	}
	if p.rx, err = srtp.CreateContext(relayKey.Key(), relayKey.Salt(), srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		p.t.Fatal(err)
	}
	return &relay.Crypto{Suite: srtpx.AES_CM_128_HMAC_SHA1_80, Keys: []srtpx.KeyParams{own}}
}

func (p *peer) send(dst netip.AddrPort, pkt []byte) {
	p.t.Helper()
	if p.tx != nil {
		var err error
		if pkt, err = p.tx.EncryptRTP(nil, pkt, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	if _, err := p.conn.WriteToUDPAddrPort(pkt, dst); err != nil {
		p.t.Fatal(err)
	}
}

type rtpIn struct {
	pt   uint8
	seq  uint16
	ssrc uint32
	data []byte
}

// collect reads RTP until n packets came or wait passed.
func (p *peer) collect(n int, wait time.Duration) []rtpIn {
	var got []rtpIn
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for len(got) < n {
		p.conn.SetReadDeadline(deadline)
		k, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		pkt := append([]byte(nil), buf[:k]...)
		if k < 12 || pkt[0]>>6 != 2 {
			continue // STUN
		}
		if p.rx != nil {
			if pkt, err = p.rx.DecryptRTP(nil, pkt, nil); err != nil {
				p.t.Errorf("peer cannot decrypt what the relay sent: %v", err)
				continue
			}
		}
		if len(pkt) < 12 || pkt[1] >= 192 && pkt[1] <= 223 {
			continue
		}
		got = append(got, rtpIn{pt: pkt[1] & 0x7f, seq: binary.BigEndian.Uint16(pkt[2:]),
			ssrc: binary.BigEndian.Uint32(pkt[8:]), data: pkt[12:]})
	}
	return got
}

// sendTone sends n 20 ms frames of a µ-law tone at freq, then one
// telephone-event packet (PT dtmfPT) if dtmfPT is not 0.
func (p *peer) sendTone(dst netip.AddrPort, freq float64, n int, ssrc uint32, dtmfPT uint8) {
	var buf []byte
	for k := 0; k < n; k++ {
		payload := media.EncodeULaw(media.Tone(freq, 0.5, k*media.FrameSamples, media.FrameSamples), nil)
		p.send(dst, media.RTP(buf, 0, uint16(60000+k), uint32(k*media.FrameSamples), ssrc, payload))
		time.Sleep(500 * time.Microsecond)
	}
	if dtmfPT != 0 {
		p.send(dst, media.RTP(buf, dtmfPT, uint16(60000+n), uint32(n*media.FrameSamples), ssrc, []byte{5, 0x8a, 0, 160}))
	}
}

// hears checks that got carries freq: in sequence order, SSRC kept, PT 0.
func hears(t *testing.T, got []rtpIn, freq float64, ssrc uint32) {
	t.Helper()
	sort.Slice(got, func(i, j int) bool { return int16(got[i].seq-got[j].seq) < 0 })
	var pcm []int16
	for _, g := range got {
		if g.ssrc != ssrc {
			t.Fatalf("SSRC %#x arrived, sender used %#x", g.ssrc, ssrc)
		}
		if g.pt == 0 {
			pcm = media.DecodeULaw(g.data, pcm)
		}
	}
	if !media.Detect(pcm, freq, 10, media.Probes...) {
		t.Fatalf("%v Hz not detected in %d samples (power %.0f)", freq, len(pcm), media.Goertzel(pcm, freq))
	}
}

// TestToneThroughPlainAndSDESLegs: a 1 kHz µ-law tone from a plain-RTP peer
// reaches an SDES-SRTP peer (decrypted by an independent pion/srtp
// context), and back; telephone-event is renumbered 101 ⇄ 96.
func TestToneThroughPlainAndSDESLegs(t *testing.T) {
	r := newRelay(t, testOpts)
	call, err := r.Allocate(context.Background(), "call-1", "test", relay.AllocateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPeer(t), newPeer(t)
	crypto := b.useSRTP(call.Local(relay.LegB).Key, srtpx.MKI{Value: 1, Len: 1}) // Lync's |1:1
	if err := call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true, Codecs: []relay.Codec{pcmu, dtmf101}}); err != nil {
		t.Fatal(err)
	}
	if err := call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true, Crypto: crypto, Codecs: []relay.Codec{pcmu, dtmf96}}); err != nil {
		t.Fatal(err)
	}
	const frames = 50

	t.Run("plain to SDES", func(t *testing.T) {
		a.sendTone(call.Local(relay.LegA).Addr, 1000, frames, 0xa0a0a0a0, 101)
		got := b.collect(frames+1, 3*time.Second)
		if len(got) != frames+1 {
			t.Fatalf("B got %d of %d packets; stats A %+v", len(got), frames+1, call.Stats(relay.LegA))
		}
		hears(t, got, 1000, 0xa0a0a0a0)
		last := got[len(got)-1]
		if last.pt != 96 || last.seq != uint16(60000+frames) {
			t.Fatalf("telephone-event arrived as PT %d seq %d, want 96 / %d", last.pt, last.seq, 60000+frames)
		}
	})
	t.Run("SDES to plain", func(t *testing.T) {
		b.sendTone(call.Local(relay.LegB).Addr, 1000, frames, 0xb0b0b0b0, 96)
		got := a.collect(frames+1, 3*time.Second)
		if len(got) != frames+1 {
			t.Fatalf("A got %d of %d packets; stats B %+v", len(got), frames+1, call.Stats(relay.LegB))
		}
		hears(t, got, 1000, 0xb0b0b0b0)
		if last := got[len(got)-1]; last.pt != 101 {
			t.Fatalf("telephone-event arrived as PT %d, want 101", last.pt)
		}
	})
	t.Run("a 440 Hz tone is not 1 kHz", func(t *testing.T) {
		a.sendTone(call.Local(relay.LegA).Addr, 440, frames, 0xa0a0a0a1, 0)
		got := b.collect(frames, 3*time.Second)
		sort.Slice(got, func(i, j int) bool { return int16(got[i].seq-got[j].seq) < 0 })
		var pcm []int16
		for _, g := range got {
			pcm = media.DecodeULaw(g.data, pcm)
		}
		if media.Detect(pcm, 1000, 10, media.Probes...) || !media.Detect(pcm, 440, 10, 300, 700, 1000, 1300) {
			t.Fatal("detector does not tell 440 Hz from 1 kHz")
		}
	})
	st := call.Stats(relay.LegB)
	if st.RxPackets < frames || st.Drops[relay.DropAuth] != 0 {
		t.Fatalf("leg B stats %+v", st)
	}
}

// TestSRTPTamperedPacketDropped: a packet whose tag does not verify is not
// forwarded.
func TestSRTPTamperedPacketDropped(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-t", "test", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	crypto := b.useSRTP(call.Local(relay.LegB).Key, srtpx.MKI{})
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true, Crypto: crypto})
	pkt, _ := b.tx.EncryptRTP(nil, media.RTP(nil, 0, 1, 0, 7, make([]byte, 160)), nil)
	pkt[20] ^= 0x40
	b.conn.WriteToUDPAddrPort(pkt, call.Local(relay.LegB).Addr)
	if got := a.collect(1, 300*time.Millisecond); len(got) != 0 {
		t.Fatal("tampered SRTP packet forwarded")
	}
	if st := call.Stats(relay.LegB); st.Drops[relay.DropAuth] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestICELite: before a check the relay neither accepts nor sends media on
// an ICE leg; a Binding request with USE-CANDIDATE gets a success response
// that verifies with the relay's password; then media flows both ways.
func TestICELite(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-ice", "test", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	peerCreds := ice.Credentials{Ufrag: "jngl", Pwd: "jinglepeerpassword0123"}
	crypto := b.useSRTP(call.Local(relay.LegB).Key, srtpx.MKI{})
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	// The ICE peer's described address is not where it sends from: only
	// the check tells the relay.
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: netip.MustParseAddrPort("192.0.2.1:9"), RTCPMux: true, ICE: &peerCreds, Crypto: crypto})
	lb := call.Local(relay.LegB)

	b.sendTone(lb.Addr, 1000, 3, 0xb1, 0)
	if got := a.collect(1, 200*time.Millisecond); len(got) != 0 {
		t.Fatal("media from an unchecked ICE address was forwarded")
	}
	a.sendTone(call.Local(relay.LegA).Addr, 1000, 3, 0xa1, 0)
	if got := b.collect(1, 200*time.Millisecond); len(got) != 0 {
		t.Fatal("relay sent to an ICE peer before any check")
	}

	// Connectivity check as a controlling full agent sends it.
	prio := make([]byte, 4)
	binary.BigEndian.PutUint32(prio, 2130706431)
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(lb.ICE.Ufrag+":"+peerCreds.Ufrag), attr{stun.AttrPriority, prio},
		attr{stun.AttrICEControlling, make([]byte, 8)}, attr{stun.AttrUseCandidate, nil},
		stun.NewShortTermIntegrity(lb.ICE.Pwd), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	b.conn.WriteToUDPAddrPort(req.Raw, lb.Addr)
	buf := make([]byte, 1500)
	b.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := b.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no STUN response: %v", err)
	}
	resp := &stun.Message{Raw: buf[:n]}
	if err := resp.Decode(); err != nil || resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
		t.Fatalf("response %v %v", resp, err)
	}
	if err := stun.NewShortTermIntegrity(lb.ICE.Pwd).Check(resp); err != nil {
		t.Fatalf("response MESSAGE-INTEGRITY: %v", err)
	}
	if err := stun.Fingerprint.Check(resp); err != nil {
		t.Fatalf("response FINGERPRINT: %v", err)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(resp); err != nil || xa.Port != int(b.addr.Port()) {
		t.Fatalf("XOR-MAPPED-ADDRESS %v, want %v", xa, b.addr)
	}
	if from.Port() != lb.Addr.Port() {
		t.Fatalf("response from %v, want %v", from, lb.Addr)
	}

	const frames = 25
	b.sendTone(lb.Addr, 1000, frames, 0xb2, 0)
	hears(t, a.collect(frames, 2*time.Second), 1000, 0xb2)
	a.sendTone(call.Local(relay.LegA).Addr, 1000, frames, 0xa2, 0)
	hears(t, b.collect(frames, 2*time.Second), 1000, 0xa2)

	// A check with the wrong password is refused with 401.
	bad, _ := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(lb.ICE.Ufrag+":"+peerCreds.Ufrag), stun.NewShortTermIntegrity("not-the-password-at-all"), stun.Fingerprint)
	b.conn.WriteToUDPAddrPort(bad.Raw, lb.Addr)
	b.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err = b.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: buf[:n]}
	var ec stun.ErrorCodeAttribute
	if m.Decode() != nil || ec.GetFrom(m) != nil || ec.Code != stun.CodeUnauthorized {
		t.Fatalf("bad check answered %v", m)
	}
}

type attr struct {
	t stun.AttrType
	v []byte
}

func (a attr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

// TestRTPTimeout: a leg whose peer stops sending raises EventTimeout; the
// leg that keeps sending does not.
func TestRTPTimeout(t *testing.T) {
	events := make(chan relay.Event, 8)
	o := testOpts
	o.RTPTimeout = 300 * time.Millisecond
	o.Tick = 20 * time.Millisecond
	o.OnEvent = func(e relay.Event) { events <- e }
	r := newRelay(t, o)
	call, _ := r.Allocate(context.Background(), "call-to", "owner-1", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // B keeps talking, A is silent
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			b.conn.WriteToUDPAddrPort(media.RTP(nil, 0, uint16(k), uint32(k*160), 9, make([]byte, 160)), call.Local(relay.LegB).Addr)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	start := time.Now()
	select {
	case e := <-events:
		if e.Type != relay.EventTimeout || e.Leg != relay.LegA || e.CallID != "call-to" || e.Owner != "owner-1" {
			t.Fatalf("event %+v", e)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("timeout after %v, configured 300ms", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no RTP timeout event")
	}
	select {
	case e := <-events:
		t.Fatalf("second event %+v (leg B is sending)", e)
	case <-time.After(400 * time.Millisecond):
	}
	if err := r.Release(context.Background(), "call-to"); err != nil {
		t.Fatal(err)
	}
}

// TestHold: sendonly on A (A holds B) forwards A→B only; resuming restores B→A.
func TestHold(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-h", "test", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true})
	if err := call.Update(relay.LegA, relay.Update{Direction: relay.SendOnly}); err != nil {
		t.Fatal(err)
	}
	a.sendTone(call.Local(relay.LegA).Addr, 1000, 5, 1, 0)
	if got := b.collect(5, time.Second); len(got) != 5 {
		t.Fatalf("on hold, A→B got %d of 5", len(got))
	}
	b.sendTone(call.Local(relay.LegB).Addr, 1000, 5, 2, 0)
	if got := a.collect(1, 300*time.Millisecond); len(got) != 0 {
		t.Fatal("on hold, B→A forwarded")
	}
	if st := call.Stats(relay.LegB); st.Drops[relay.DropDirection] != 5 {
		t.Fatalf("B stats %+v", st)
	}
	call.Update(relay.LegA, relay.Update{Direction: relay.SendRecv})
	b.sendTone(call.Local(relay.LegB).Addr, 1000, 5, 2, 0)
	if got := a.collect(5, time.Second); len(got) != 5 {
		t.Fatalf("resumed, B→A got %d of 5", len(got))
	}
}

// TestLatching: a plain-RTP peer behind NAT sends from another port than
// it described; its first packet from the expected IP latches that
// address, the relay answers there, and another source is then refused.
func TestLatching(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-l", "test", relay.AllocateOptions{Legs: [2]relay.LegOptions{{DedicatedPorts: true}, {}}})
	la := call.Local(relay.LegA)
	if !la.Dedicated || la.Addr == call.Local(relay.LegB).Addr {
		t.Fatalf("leg A not on its own ports: %+v", la)
	}
	a, b, intruder := newPeer(t), newPeer(t), newPeer(t)
	described := netip.AddrPortFrom(a.addr.Addr(), 9) // what its SDP said
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: described})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true})

	a.sendTone(la.Addr, 1000, 3, 1, 0)
	if got := b.collect(3, time.Second); len(got) != 3 {
		t.Fatalf("B got %d of 3", len(got))
	}
	b.sendTone(call.Local(relay.LegB).Addr, 1000, 3, 2, 0)
	if got := a.collect(3, time.Second); len(got) != 3 {
		t.Fatalf("relay did not answer the latched address: A got %d of 3", len(got))
	}
	intruder.sendTone(la.Addr, 1000, 3, 3, 0)
	if got := b.collect(1, 300*time.Millisecond); len(got) != 0 {
		t.Fatal("packets from a second source forwarded after latching")
	}
}

// TestNoCommonCodec: PCMA on one leg and PCMU on the other pass nothing.
func TestPayloadTypeNotNegotiated(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-pt", "test", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true, Codecs: []relay.Codec{pcmu, {PT: 13, Name: "CN", ClockRate: 8000}}})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true, Codecs: []relay.Codec{pcmu}})
	var buf []byte
	a.send(call.Local(relay.LegA).Addr, media.RTP(buf, 0, 10, 0, 5, make([]byte, 160)))
	a.send(call.Local(relay.LegA).Addr, media.RTP(buf, 13, 11, 160, 5, []byte{40}))
	a.send(call.Local(relay.LegA).Addr, media.RTP(buf, 0, 12, 320, 5, make([]byte, 160)))
	got := b.collect(3, 500*time.Millisecond)
	if len(got) != 2 || got[0].seq != 10 || got[1].seq != 11 {
		t.Fatalf("got %+v, want seq 10 and 11 (CN dropped, no gap)", got)
	}
}

func TestControlErrors(t *testing.T) {
	r := newRelay(t, testOpts)
	ctx := context.Background()
	if _, err := r.Allocate(ctx, "x", "o", relay.AllocateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Allocate(ctx, "x", "o", relay.AllocateOptions{}); !errors.Is(err, relay.ErrCallExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.SetRemote(ctx, "nope", relay.LegA, relay.RemoteDescription{}); !errors.Is(err, relay.ErrUnknownCall) {
		t.Fatalf("unknown: %v", err)
	}
	if err := r.SetRemote(ctx, "x", relay.LegA, relay.RemoteDescription{}); !errors.Is(err, relay.ErrDescription) {
		t.Fatalf("empty description: %v", err)
	}
	if err := r.Update(ctx, "x", relay.LegB, relay.Update{Direction: relay.Inactive}); !errors.Is(err, relay.ErrNoRemote) {
		t.Fatalf("update before remote: %v", err)
	}
	c, _ := r.Call("x")
	if err := c.SetRemote(relay.LegID(2), relay.RemoteDescription{}); !errors.Is(err, relay.ErrLeg) {
		t.Fatalf("leg 2: %v", err)
	}
	if err := r.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRemote(relay.LegA, relay.RemoteDescription{Addr: netip.MustParseAddrPort("127.0.0.1:9")}); !errors.Is(err, relay.ErrReleased) {
		t.Fatalf("after release: %v", err)
	}
	if err := r.Release(ctx, "x"); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// TestSharedPortLatching: on a shared port a plain-RTP peer is accepted
// only from the address it described (an IP alone proves nothing there),
// while an SRTP peer sending from another port is latched once its packet
// authenticates with its keys.
func TestSharedPortLatching(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-s", "test", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	aSaid := netip.AddrPortFrom(a.addr.Addr(), 9)
	bSaid := netip.AddrPortFrom(b.addr.Addr(), 11)
	crypto := b.useSRTP(call.Local(relay.LegB).Key, srtpx.MKI{})
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: aSaid, RTCPMux: true})
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: bSaid, RTCPMux: true, Crypto: crypto})

	a.sendTone(call.Local(relay.LegA).Addr, 1000, 3, 1, 0)
	b.sendTone(call.Local(relay.LegB).Addr, 1000, 3, 2, 0)
	// B latched (SRTP authenticated), so A's next packets would reach it;
	// but A itself (plain, wrong port) was not latched.
	if got := a.collect(1, 300*time.Millisecond); len(got) != 0 {
		t.Fatal("relay answered a plain-RTP peer it never latched")
	}
	if st := call.Stats(relay.LegA); st.RxPackets != 0 {
		t.Fatalf("plain packets from an undescribed port accepted on a shared port: %+v", st)
	}
	if st := call.Stats(relay.LegB); st.RxPackets != 3 {
		t.Fatalf("SRTP peer from another port not latched: %+v", st)
	}
	// A forged packet from yet another port with B's IP does not move B.
	intruder := newPeer(t)
	intruder.conn.WriteToUDPAddrPort(media.RTP(nil, 0, 1, 0, 3, make([]byte, 170)), call.Local(relay.LegB).Addr)
	time.Sleep(50 * time.Millisecond)
	if st := call.Stats(relay.LegB); st.RxPackets != 3 {
		t.Fatalf("forged packet counted on leg B: %+v", st)
	}
}

// TestRTCP: RTCP from a plain peer without rtcp-mux (to the leg's RTCP
// port) reaches an SDES peer with rtcp-mux as SRTCP its pion/srtp context
// decrypts, and the SDES peer's SRTCP comes back as plain RTCP to the
// plain peer's RTCP port.
func TestRTCP(t *testing.T) {
	r := newRelay(t, testOpts)
	call, _ := r.Allocate(context.Background(), "call-rtcp", "test", relay.AllocateOptions{Legs: [2]relay.LegOptions{{DedicatedPorts: true}, {}}})
	aRTP, aRTCP, b := newPeer(t), newPeer(t), newPeer(t)
	crypto := b.useSRTP(call.Local(relay.LegB).Key, srtpx.MKI{Value: 1, Len: 1})
	if err := call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: aRTP.addr, RTCPAddr: aRTCP.addr}); err != nil {
		t.Fatal(err)
	}
	if err := call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true, Crypto: crypto}); err != nil {
		t.Fatal(err)
	}
	la, lb := call.Local(relay.LegA), call.Local(relay.LegB)
	if la.RTCPAddr == la.Addr {
		t.Fatal("leg A has no RTCP port of its own")
	}
	// Sender report from A, to A's RTCP port.
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0xaa, 0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}
	aRTCP.conn.WriteToUDPAddrPort(sr, la.RTCPAddr)
	buf := make([]byte, 1500)
	b.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := b.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("B got no RTCP: %v; stats %+v", err, call.Stats(relay.LegA))
	}
	if from != lb.Addr {
		t.Fatalf("RTCP to a muxed peer came from %v, want the RTP port %v", from, lb.Addr)
	}
	dec, err := b.rx.DecryptRTCP(nil, buf[:n], nil)
	if err != nil || string(dec) != string(sr) {
		t.Fatalf("SRTCP from the relay: %v\n got % x\nwant % x", err, dec, sr)
	}
	// Receiver report from B (SRTCP with Lync's MKI), muxed on the RTP port.
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0xbb, 0xbb}
	enc, err := b.tx.EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.conn.WriteToUDPAddrPort(enc, lb.Addr)
	aRTCP.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err = aRTCP.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("A's RTCP port got nothing: %v; stats %+v", err, call.Stats(relay.LegB))
	}
	if string(buf[:n]) != string(rr) || from != la.RTCPAddr {
		t.Fatalf("A got % x from %v, want % x from %v", buf[:n], from, rr, la.RTCPAddr)
	}
}

// TestConsentLost: an ICE leg whose peer stops sending checks loses consent;
// the owner hears of it and the relay stops sending to that peer.
func TestConsentLost(t *testing.T) {
	events := make(chan relay.Event, 8)
	o := testOpts
	o.ConsentTimeout = 200 * time.Millisecond
	o.RTPTimeout = -1
	o.Tick = 20 * time.Millisecond
	o.OnEvent = func(e relay.Event) { events <- e }
	r := newRelay(t, o)
	call, _ := r.Allocate(context.Background(), "call-c", "owner", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	creds := ice.Credentials{Ufrag: "peer", Pwd: "peerpasswordpeerpasswor"}
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	call.SetRemote(relay.LegB, relay.RemoteDescription{ICE: &creds, RTCPMux: true})
	lb := call.Local(relay.LegB)
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(lb.ICE.Ufrag+":peer"),
		attr{stun.AttrUseCandidate, nil}, stun.NewShortTermIntegrity(lb.ICE.Pwd), stun.Fingerprint)
	b.conn.WriteToUDPAddrPort(req.Raw, lb.Addr)
	a.sendTone(call.Local(relay.LegA).Addr, 1000, 2, 1, 0)
	if got := b.collect(2, time.Second); len(got) != 2 {
		t.Fatalf("before consent expiry B got %d of 2", len(got))
	}
	select {
	case e := <-events:
		if e.Type != relay.EventConsentLost || e.Leg != relay.LegB {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no consent-lost event")
	}
	a.sendTone(call.Local(relay.LegA).Addr, 1000, 2, 1, 0)
	if got := b.collect(1, 300*time.Millisecond); len(got) != 0 {
		t.Fatal("relay kept sending after consent expired")
	}
}

type recorder struct {
	mu   sync.Mutex
	recs map[string]relay.Allocation
}

func (r *recorder) Put(_ context.Context, a relay.Allocation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs[a.CallID] = a
	return nil
}

func (r *recorder) Delete(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recs, id)
	return nil
}

type metrics struct {
	mu     sync.Mutex
	byLbl  map[relay.Labels]relay.Counters
	calls  int
	called int
}

func (m *metrics) Add(l relay.Labels, d relay.Counters) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byLbl[l]
	c.RxPackets += d.RxPackets
	c.TxPackets += d.TxPackets
	for i := range c.Drops {
		c.Drops[i] += d.Drops[i]
	}
	m.byLbl[l] = c
}

func (m *metrics) Active(calls, legs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls, m.called = calls, m.called+1
}

// TestControllerRecorderMetrics: the by-ID Controller records allocations
// through the Recorder and forgets them on release; released legs' counters
// reach Metrics under bounded labels.
func TestControllerRecorderMetrics(t *testing.T) {
	rec := &recorder{recs: map[string]relay.Allocation{}}
	met := &metrics{byLbl: map[relay.Labels]relay.Counters{}}
	o := testOpts
	o.Recorder, o.Metrics, o.Instance = rec, met, "relay-1"
	o.MetricsInterval, o.Tick = 50*time.Millisecond, 10*time.Millisecond
	r := newRelay(t, o)
	ctl := r.Controller()
	ctx := context.Background()
	al, err := ctl.Allocate(ctx, "call-x", "sip@host", relay.AllocateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.recs["call-x"]; got.Owner != "sip@host" || got.Instance != "relay-1" || got.Legs[0].Addr != al.Legs[0].Addr {
		t.Fatalf("record %+v", got)
	}
	a, b := newPeer(t), newPeer(t)
	ctl.SetRemote(ctx, "call-x", relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true})
	ctl.SetRemote(ctx, "call-x", relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true})
	a.sendTone(al.Legs[0].Addr, 1000, 4, 1, 0)
	b.collect(4, time.Second)
	time.Sleep(150 * time.Millisecond) // a metrics interval or two
	if err := ctl.Release(ctx, "call-x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.recs["call-x"]; ok {
		t.Fatal("allocation record kept after release")
	}
	met.mu.Lock()
	defer met.mu.Unlock()
	c := met.byLbl[relay.Labels{Security: "plain", Transport: "latch", Ports: "shared"}]
	if c.RxPackets != 4 || c.TxPackets != 4 {
		t.Fatalf("metrics %+v", met.byLbl)
	}
	if met.called == 0 || met.calls != 1 && met.calls != 0 {
		t.Fatalf("Active called %d times, last calls=%d", met.called, met.calls)
	}
}

// TestHoldSuspendsTimeout: a holdee that falls silent (its far peer does
// not receive) does not time out; on resume its timeout starts again.
func TestHoldSuspendsTimeout(t *testing.T) {
	events := make(chan relay.Event, 8)
	o := testOpts
	o.RTPTimeout = 200 * time.Millisecond
	o.Tick = 20 * time.Millisecond
	o.OnEvent = func(e relay.Event) { events <- e }
	r := newRelay(t, o)
	call, _ := r.Allocate(context.Background(), "call-hold", "o", relay.AllocateOptions{})
	a, b := newPeer(t), newPeer(t)
	call.SetRemote(relay.LegA, relay.RemoteDescription{Addr: a.addr, RTCPMux: true, Direction: relay.SendOnly}) // A holds B
	call.SetRemote(relay.LegB, relay.RemoteDescription{Addr: b.addr, RTCPMux: true})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // A plays music on hold; B is silent
		defer close(done)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			a.conn.WriteToUDPAddrPort(media.RTP(nil, 0, uint16(k), 0, 1, make([]byte, 160)), call.Local(relay.LegA).Addr)
		}
	}()
	defer func() { close(stop); <-done }()
	select {
	case e := <-events:
		t.Fatalf("event while on hold: %+v", e)
	case <-time.After(600 * time.Millisecond):
	}
	resumed := time.Now()
	call.Update(relay.LegA, relay.Update{Direction: relay.SendRecv})
	select {
	case e := <-events:
		if e.Type != relay.EventTimeout || e.Leg != relay.LegB || time.Since(resumed) < 150*time.Millisecond {
			t.Fatalf("event %+v after %v", e, time.Since(resumed))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("silent leg B did not time out after resume")
	}
}
