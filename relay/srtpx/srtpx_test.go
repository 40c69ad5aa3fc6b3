package srtpx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/pion/srtp/v2"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 3711 Appendix B.3: master key and salt, and the session keys the key
// derivation must produce from them.
const (
	b3MasterKey  = "E1F97A0D3E018BE0D64FA32C06DE4139"
	b3MasterSalt = "0EC675AD498AFEEBB6960B3AABE6"
	b3CipherKey  = "C61E7A93744F39EE10734AFE3FF7A087"
	b3CipherSalt = "30CBBC08863D8C85D49DB34A9AE1"
	b3AuthKey    = "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"
)

// aesCM is an independent AES counter-mode keystream generator (RFC 3711
// §4.1.1), written here from the RFC to check the contexts against.
func aesCM(t testing.TB, key, iv []byte, n int) []byte {
	t.Helper()
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	cipher.NewCTR(blk, iv).XORKeyStream(out, out)
	return out
}

// srtpIV is IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
func srtpIV(salt []byte, ssrc uint32, index uint64) []byte {
	iv := make([]byte, 16)
	copy(iv, salt)
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], ssrc)
	for i := 0; i < 4; i++ {
		iv[4+i] ^= s[i]
	}
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], index<<16)
	for i := 0; i < 8; i++ {
		iv[8+i] ^= x[i]
	}
	return iv
}

// TestRFC3711B2KeystreamHelper checks the helper against RFC 3711 B.2.
func TestRFC3711B2KeystreamHelper(t *testing.T) {
	key := unhex(t, "2B7E151628AED2A6ABF7158809CF4F3C")
	iv := unhex(t, "F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
	want := unhex(t, `E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0`)
	if got := aesCM(t, key, iv, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("B.2 keystream\n got %x\nwant %x", got, want)
	}
}

func b3Keys(t testing.TB) []KeyParams {
	var k KeyParams
	copy(k.Master[:], append(unhex(t, b3MasterKey), unhex(t, b3MasterSalt)...))
	return []KeyParams{k}
}

func rtpPacket(seq uint16, ssrc uint32, payload []byte, room int) []byte {
	b := make([]byte, 12, 12+len(payload)+room)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], 160*uint32(seq))
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return append(b, payload...)
}

// TestRFC3711B3Vectors protects packets with the B.3 master key and checks
// each byte against what the RFC's derived session keys give by hand:
// payload XOR AES-CM(k_e, IV(k_s)), tag = HMAC-SHA1(k_a, packet||ROC).
func testRFC3711B3Vectors(t *testing.T, be Backend) {
	ke, ks, ka := unhex(t, b3CipherKey), unhex(t, b3CipherSalt), unhex(t, b3AuthKey)
	for _, suite := range []Suite{AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32} {
		c, err := NewContext(suite, b3Keys(t), Options{Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		payload := bytes.Repeat([]byte{0xab}, 160)
		for _, seq := range []uint16{0x1234, 0x1235} {
			p := rtpPacket(seq, 0xcafebabe, payload, 16)
			n, err := c.ProtectRTP(p, len(p))
			if err != nil {
				t.Fatal(err)
			}
			got := p[:n]
			ksm := aesCM(t, ke, srtpIV(ks, 0xcafebabe, uint64(seq)), len(payload))
			want := rtpPacket(seq, 0xcafebabe, payload, 0)
			for i := range ksm {
				want[12+i] ^= ksm[i]
			}
			mac := hmac.New(sha1.New, ka)
			mac.Write(want)
			mac.Write([]byte{0, 0, 0, 0}) // ROC
			want = append(want, mac.Sum(nil)[:suite.TagLen()]...)
			if !bytes.Equal(got, want) {
				t.Fatalf("%v seq %d\n got %x\nwant %x", suite, seq, got, want)
			}
		}
	}
}

// TestLibsrtpKnownAnswer is libsrtp's srtp_driver reference packet for
// AES_CM_128_HMAC_SHA1_80 with the B.3 master key.
func testLibsrtpKnownAnswer(t *testing.T, be Backend) {
	plain := unhex(t, "800f1234decafbadcafebabe abababababababababababababababab")
	want := unhex(t, "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb")
	c, err := NewContext(AES_CM_128_HMAC_SHA1_80, b3Keys(t), Options{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, len(plain), 64)
	copy(p, plain)
	n, err := c.ProtectRTP(p, len(p))
	if err != nil || !bytes.Equal(p[:n], want) {
		t.Fatalf("protect: %v\n got %x\nwant %x", err, p[:n], want)
	}
	d, _ := NewContext(AES_CM_128_HMAC_SHA1_80, b3Keys(t), Options{Backend: be})
	m, err := d.UnprotectRTP(p[:n])
	if err != nil || !bytes.Equal(p[:m], plain) {
		t.Fatalf("unprotect: %v %x", err, p[:m])
	}
}

// TestMKIAsLyncSendsIt: "|2^31|1:1" puts one byte 0x01 between the
// encrypted payload and the tag; the tag does not cover the MKI (RFC 3711
// §4.2: the authenticated portion ends before it).
func testMKIAsLyncSendsIt(t *testing.T, be Backend) {
	keys := b3Keys(t)
	keys[0].MKI = MKI{Value: 1, Len: 1}
	keys[0].Lifetime = 1 << 31
	tx, err := NewContext(AES_CM_128_HMAC_SHA1_80, keys, Options{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("lync sends an MKI with every packet")
	p := rtpPacket(7, 0x11223344, payload, 32)
	n, err := tx.ProtectRTP(p, len(p))
	if err != nil {
		t.Fatal(err)
	}
	p = p[:n]
	if n != 12+len(payload)+1+10 {
		t.Fatalf("SRTP length %d, want header+payload+MKI(1)+tag(10)", n)
	}
	if p[n-11] != 0x01 {
		t.Fatalf("MKI byte %#x, want 0x01", p[n-11])
	}
	mac := hmac.New(sha1.New, unhex(t, b3AuthKey))
	mac.Write(p[:n-11])
	mac.Write([]byte{0, 0, 0, 0})
	if !bytes.Equal(mac.Sum(nil)[:10], p[n-10:n]) {
		t.Fatal("tag does not match HMAC over header||payload||ROC (MKI excluded)")
	}

	// An independent pion/srtp context with the same MKI reads it.
	pc, err := srtp.CreateContext(keys[0].Key(), keys[0].Salt(), srtp.ProtectionProfileAes128CmHmacSha1_80, srtp.MasterKeyIndicator([]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := pc.DecryptRTP(nil, append([]byte(nil), p[:n]...), nil)
	if err != nil || !bytes.Equal(out[12:], payload) {
		t.Fatalf("pion decrypt: %v %q", err, out)
	}

	// Our receiver with the same key params round-trips it; one expecting
	// MKI 2 refuses it.
	rx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, keys, Options{Backend: be})
	q := append([]byte(nil), p[:n]...)
	m, err := rx.UnprotectRTP(q)
	if err != nil || !bytes.Equal(q[12:m], payload) {
		t.Fatalf("unprotect: %v", err)
	}
	other := keys
	other[0].MKI.Value = 2
	rx2, _ := NewContext(AES_CM_128_HMAC_SHA1_80, other, Options{Backend: be})
	if _, err := rx2.UnprotectRTP(append([]byte(nil), p[:n]...)); !errors.Is(err, ErrUnknownMKI) {
		t.Fatalf("wrong MKI: %v, want ErrUnknownMKI", err)
	}
}

// TestSeveralMasterKeys: with two keys told apart by MKI, the receiver takes
// packets under either key.
func testSeveralMasterKeys(t *testing.T, be Backend) {
	c, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 " +
		"inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4;" +
		"inline:QUJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0|2^20|2:4")
	if err != nil {
		t.Fatal(err)
	}
	rx, err := NewContext(c.Suite, c.Keys, Options{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range c.Keys {
		tx, err := NewContext(c.Suite, []KeyParams{k}, Options{Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		p := rtpPacket(uint16(100+i), 5, []byte("x"), 32)
		n, _ := tx.ProtectRTP(p, len(p))
		p = p[:n]
		if !bytes.Equal(p[n-14:n-10], k.MKI.Bytes()) {
			t.Fatalf("key %d: MKI bytes % x", i, p[n-14:n-10])
		}
		if _, err := rx.UnprotectRTP(p[:n]); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
}

// TestInteropWithPion: our contexts against independent pion/srtp contexts,
// both ways, RTP and RTCP, both suites, with and without MKI.
func testInteropWithPion(t *testing.T, be Backend) {
	for _, suite := range []Suite{AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32} {
		for _, mki := range []MKI{{}, {Value: 1, Len: 1}, {Value: 0x0102, Len: 4}} {
			k, _ := NewKeyParams()
			k.MKI = mki
			prof := srtp.ProtectionProfileAes128CmHmacSha1_80
			if suite == AES_CM_128_HMAC_SHA1_32 {
				prof = srtp.ProtectionProfileAes128CmHmacSha1_32
			}
			popts := []srtp.ContextOption{}
			if mki.Len > 0 {
				popts = append(popts, srtp.MasterKeyIndicator(mki.Bytes()))
			}
			pionTx, _ := srtp.CreateContext(k.Key(), k.Salt(), prof, popts...)
			pionRx, _ := srtp.CreateContext(k.Key(), k.Salt(), prof, popts...)
			ours, err := NewContext(suite, []KeyParams{k}, Options{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			oursRx, _ := NewContext(suite, []KeyParams{k}, Options{Backend: be})
			for seq := uint16(65530); seq != 5; seq++ { // across the ROC wrap
				payload := bytes.Repeat([]byte{byte(seq)}, 160)
				// pion → ours
				enc, err := pionTx.EncryptRTP(nil, rtpPacket(seq, 9, payload, 0), nil)
				if err != nil {
					t.Fatal(err)
				}
				n, err := oursRx.UnprotectRTP(enc)
				if err != nil || !bytes.Equal(enc[12:n], payload) {
					t.Fatalf("%v mki=%v seq %d pion→ours: %v", suite, mki, seq, err)
				}
				// ours → pion
				p := rtpPacket(seq, 10, payload, 32)
				n, err = ours.ProtectRTP(p, len(p))
				if err != nil {
					t.Fatal(err)
				}
				dec, err := pionRx.DecryptRTP(nil, p[:n], nil)
				if err != nil || !bytes.Equal(dec[12:], payload) {
					t.Fatalf("%v mki=%v seq %d ours→pion: %v", suite, mki, seq, err)
				}
			}
			// RTCP: an RR with one report block, both ways.
			rr := []byte{0x81, 201, 0, 7, 0, 0, 0, 10, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			enc, err := pionTx.EncryptRTCP(nil, rr, nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := oursRx.UnprotectRTCP(enc)
			if err != nil || !bytes.Equal(enc[:n], rr) {
				t.Fatalf("%v mki=%v RTCP pion→ours: %v", suite, mki, err)
			}
			p := make([]byte, len(rr), 128)
			copy(p, rr)
			n, err = ours.ProtectRTCP(p, len(rr))
			if err != nil || n != len(rr)+ours.OverheadRTCP() {
				t.Fatalf("ProtectRTCP = %d, %v", n, err)
			}
			dec, err := pionRx.DecryptRTCP(nil, p[:n], nil)
			if err != nil || !bytes.Equal(dec, rr) {
				t.Fatalf("%v mki=%v RTCP ours→pion: %v", suite, mki, err)
			}
		}
	}
}

func testTamperAndReplay(t *testing.T, be Backend) {
	k, _ := NewKeyParams()
	tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	rx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	p := rtpPacket(1, 1, []byte("hello"), 32)
	n, _ := tx.ProtectRTP(p, len(p))
	pkt := append([]byte(nil), p[:n]...)

	bad := append([]byte(nil), pkt...)
	bad[13] ^= 1
	if _, err := rx.UnprotectRTP(bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered: %v, want ErrAuth", err)
	}
	if _, err := rx.UnprotectRTP(append([]byte(nil), pkt...)); err != nil {
		t.Fatalf("first copy: %v", err)
	}
	if _, err := rx.UnprotectRTP(append([]byte(nil), pkt...)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed: %v, want ErrReplay", err)
	}
	if _, err := rx.UnprotectRTP(pkt[:15]); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("short: %v", err)
	}
}

func TestReplayWindow(t *testing.T) {
	w := newWindow(64, 1<<48-1)
	ok := func(i uint64) bool {
		f, ok := w.Check(i)
		if ok {
			f()
		}
		return ok
	}
	for _, c := range []struct {
		i    uint64
		want bool
	}{{100, true}, {100, false}, {99, true}, {37, true}, {36, false}, {200, true}, {137, true}, {136, false}, {99, false}, {201, true}, {137, false}} {
		if got := ok(c.i); got != c.want {
			t.Fatalf("index %d: accepted=%v, want %v", c.i, got, c.want)
		}
	}
	next := uint64(5000)
	if a := testing.AllocsPerRun(100, func() { next++; f, _ := w.Check(next); f() }); a != 0 {
		t.Fatalf("window allocates %v", a)
	}
}

func testLifetime(t *testing.T, be Backend) {
	k, _ := NewKeyParams()
	k.Lifetime = 2
	tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	for i := 0; i < 3; i++ {
		p := rtpPacket(uint16(i), 1, []byte("x"), 32)
		_, err := tx.ProtectRTP(p, len(p))
		if (i < 2) != (err == nil) || (i == 2 && !errors.Is(err, ErrKeyExpired)) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
}

func testBufferTooSmall(t *testing.T, be Backend) {
	k, _ := NewKeyParams()
	tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	p := rtpPacket(1, 1, []byte("x"), 0)
	if _, err := tx.ProtectRTP(p[:len(p):len(p)], len(p)); !errors.Is(err, ErrBufferSize) {
		t.Fatalf("no room: %v", err)
	}
}

func testProtectAllocs(t *testing.T, be Backend) {
	k, _ := NewKeyParams()
	tx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	rx, _ := NewContext(AES_CM_128_HMAC_SHA1_80, []KeyParams{k}, Options{Backend: be})
	p := rtpPacket(1, 1, make([]byte, 160), 32)
	seq := uint16(0)
	a := testing.AllocsPerRun(200, func() {
		seq++
		binary.BigEndian.PutUint16(p[2:], seq)
		n, err := tx.ProtectRTP(p[:172], 172)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rx.UnprotectRTP(p[:n]); err != nil {
			t.Fatal(err)
		}
	})
	// pion/srtp v2 allocates in xorBytesCTR (two slices) and in the HMAC's
	// Sum(nil), on each of protect and unprotect; the native transform and
	// our wrapper allocate nothing.
	t.Logf("%q protect+unprotect: %v allocs per packet", be, a)
	limit := 0.0
	if be == BackendPion {
		limit = 8
	}
	if a > limit {
		t.Fatalf("protect+unprotect allocates %v per packet, want at most %v", a, limit)
	}
}

// TestBackends runs the context tests against both implementations.
func TestBackends(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"RFC3711B3Vectors", testRFC3711B3Vectors},
		{"LibsrtpKnownAnswer", testLibsrtpKnownAnswer},
		{"MKIAsLyncSendsIt", testMKIAsLyncSendsIt},
		{"SeveralMasterKeys", testSeveralMasterKeys},
		{"InteropWithPion", testInteropWithPion},
		{"TamperAndReplay", testTamperAndReplay},
		{"Lifetime", testLifetime},
		{"BufferTooSmall", testBufferTooSmall},
		{"ProtectAllocs", testProtectAllocs},
	}
	for _, be := range []Backend{BackendNative, BackendPion} {
		name := string(be)
		if be == BackendNative {
			name = "native"
		}
		t.Run(name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, be) })
			}
		})
	}
}
