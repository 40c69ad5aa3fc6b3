package srtpx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"hash"
)

// Key derivation labels (RFC 3711 §4.3.2).
const (
	labelRTPEncryption  = 0x00
	labelRTPAuth        = 0x01
	labelRTPSalt        = 0x02
	labelRTCPEncryption = 0x03
	labelRTCPAuth       = 0x04
	labelRTCPSalt       = 0x05

	authKeyLen   = 20
	maxSRTCPIdx  = 1<<31 - 1
	maxSSRCState = 64 // streams one context keeps state for
)

// sessionKeys are the keys RFC 3711 §4.3 derives from one master key for
// SRTP or for SRTCP (key derivation rate 0: derived once).
type sessionKeys struct {
	block cipher.Block
	salt  [SaltLen]byte
	auth  hash.Hash // HMAC-SHA1 keyed with the session authentication key
}

type masterKey struct {
	mki       []byte
	rtp, rtcp sessionKeys
}

// family is the per-stream state and scratch space of RTP or of RTCP; the
// two families never share one, so they may run on different goroutines.
type family struct {
	states map[uint32]*streamState
	last   *streamState
	ctr    [16]byte
	ks     [16]byte
	mac    [32]byte
	roc    [4]byte
}

type streamState struct {
	ssrc    uint32
	started bool
	roc     uint32 // SRTP rollover counter
	sl      uint16 // highest sequence number seen
	index   uint32 // SRTCP: last index sent
	win     *window
}

// native is this package's AES_CM_128_HMAC_SHA1_80/_32 transform.
type native struct {
	tagLen int
	mkiLen int
	keys   []masterKey // keys[0] protects
	win    int
	rtp    family
	rtcp   family
}

func newNative(suite Suite, keys []KeyParams, win int) (*native, error) {
	t := &native{tagLen: suite.TagLen(), mkiLen: int(keys[0].MKI.Len), win: win,
		rtp: family{states: map[uint32]*streamState{}}, rtcp: family{states: map[uint32]*streamState{}}}
	for _, k := range keys {
		mk, err := deriveKeys(k)
		if err != nil {
			return nil, err
		}
		t.keys = append(t.keys, mk)
	}
	return t, nil
}

func deriveKeys(k KeyParams) (masterKey, error) {
	mb, err := aes.NewCipher(k.Key())
	if err != nil {
		return masterKey{}, err
	}
	prf := func(label byte, n int) []byte {
		var iv [16]byte
		copy(iv[:], k.Salt())
		iv[7] ^= label
		out := make([]byte, (n+15)/16*16)
		for i := 0; i*16 < n; i++ {
			binary.BigEndian.PutUint16(iv[14:], uint16(i))
			mb.Encrypt(out[i*16:], iv[:])
		}
		return out[:n]
	}
	session := func(enc, auth, salt byte) (sessionKeys, error) {
		var s sessionKeys
		b, err := aes.NewCipher(prf(enc, KeyLen))
		if err != nil {
			return s, err
		}
		s.block = b
		copy(s.salt[:], prf(salt, SaltLen))
		s.auth = hmac.New(sha1.New, prf(auth, authKeyLen))
		return s, nil
	}
	mk := masterKey{mki: k.MKI.Bytes()}
	if mk.rtp, err = session(labelRTPEncryption, labelRTPAuth, labelRTPSalt); err != nil {
		return mk, err
	}
	if mk.rtcp, err = session(labelRTCPEncryption, labelRTCPAuth, labelRTCPSalt); err != nil {
		return mk, err
	}
	return mk, nil
}

// keyFor finds the master key whose MKI a received packet carries.
func (t *native) keyFor(mki []byte) *masterKey {
	if t.mkiLen == 0 {
		return &t.keys[0]
	}
	for i := range t.keys {
		if bytes.Equal(t.keys[i].mki, mki) {
			return &t.keys[i]
		}
	}
	return nil
}

func (f *family) state(ssrc uint32) *streamState {
	if f.last != nil && f.last.ssrc == ssrc {
		return f.last
	}
	s := f.states[ssrc]
	if s != nil {
		f.last = s
	}
	return s
}

func (f *family) add(ssrc uint32, win int) *streamState {
	if len(f.states) >= maxSSRCState {
		clear(f.states) // a stream flood: start over rather than grow
		f.last = nil
	}
	s := &streamState{ssrc: ssrc}
	if win > 0 {
		s.win = newWindow(uint(win), 1<<48-1)
	}
	f.states[ssrc] = s
	f.last = s
	return s
}

// xorKeystream XORs data with AES-CM keystream for IV (RFC 3711 §4.1.1):
// IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16); block j uses IV+j.
func (f *family) xorKeystream(k *sessionKeys, ssrc uint32, index uint64, data []byte) {
	ctr := &f.ctr
	copy(ctr[:SaltLen], k.salt[:])
	ctr[14], ctr[15] = 0, 0
	ctr[4] ^= byte(ssrc >> 24)
	ctr[5] ^= byte(ssrc >> 16)
	ctr[6] ^= byte(ssrc >> 8)
	ctr[7] ^= byte(ssrc)
	for i := 0; i < 6; i++ {
		ctr[8+i] ^= byte(index >> (8 * (5 - i)))
	}
	for j, off := 0, 0; off < len(data); j, off = j+1, off+16 {
		binary.BigEndian.PutUint16(ctr[14:], uint16(j))
		k.block.Encrypt(f.ks[:], ctr[:])
		subtle.XORBytes(data[off:], data[off:], f.ks[:])
	}
}

// tag computes HMAC-SHA1 over data (and the ROC for SRTP) into f.mac.
func (f *family) tag(k *sessionKeys, data []byte, roc *uint32) []byte {
	k.auth.Reset()
	k.auth.Write(data)
	if roc != nil {
		binary.BigEndian.PutUint32(f.roc[:], *roc)
		k.auth.Write(f.roc[:])
	}
	return k.auth.Sum(f.mac[:0])
}

// rtpHeaderLen is the RTP header's length (fixed part, CSRCs, extension).
func rtpHeaderLen(b []byte) (int, error) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, ErrShortPacket
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return 0, ErrShortPacket
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if n > len(b) {
		return 0, ErrShortPacket
	}
	return n, nil
}

// estimate guesses a packet's rollover counter from the stream's state
// (RFC 3711 Appendix A).
func estimate(s *streamState, seq uint16) uint32 {
	if s == nil || !s.started {
		if s != nil {
			return s.roc
		}
		return 0
	}
	v := s.roc
	if s.sl < 1<<15 {
		if int(seq)-int(s.sl) > 1<<15 && v > 0 {
			v--
		}
	} else if int(s.sl)-(1<<15) > int(seq) {
		v++
	}
	return v
}

func (s *streamState) update(roc uint32, seq uint16) {
	switch {
	case !s.started:
		s.started, s.roc, s.sl = true, roc, seq
	case roc > s.roc:
		s.roc, s.sl = roc, seq
	case roc == s.roc && seq > s.sl:
		s.sl = seq
	}
}

func (t *native) protectRTP(buf []byte, n int) (int, error) {
	b := buf[:n]
	hl, err := rtpHeaderLen(b)
	if err != nil {
		return 0, err
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	f := &t.rtp
	s := f.state(ssrc)
	if s == nil {
		s = f.add(ssrc, 0)
	}
	roc := estimate(s, seq)
	s.update(roc, seq)
	k := &t.keys[0]
	f.xorKeystream(&k.rtp, ssrc, uint64(roc)<<16|uint64(seq), b[hl:])
	mac := f.tag(&k.rtp, b, &roc)
	out := buf[:n+t.mkiLen+t.tagLen]
	copy(out[n:], k.mki)
	copy(out[n+t.mkiLen:], mac[:t.tagLen])
	return len(out), nil
}

func (t *native) unprotectRTP(b []byte) (int, error) {
	hl, err := rtpHeaderLen(b)
	if err != nil {
		return 0, err
	}
	end := len(b) - t.tagLen - t.mkiLen // authenticated portion: b[:end]
	if end < hl {
		return 0, ErrShortPacket
	}
	k := t.keyFor(b[end : end+t.mkiLen])
	if k == nil {
		return 0, ErrUnknownMKI
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	f := &t.rtp
	s := f.state(ssrc)
	roc := estimate(s, seq)
	index := uint64(roc)<<16 | uint64(seq)
	if s != nil && s.win != nil {
		if _, ok := s.win.Check(index); !ok {
			return 0, ErrReplay
		}
	}
	mac := f.tag(&k.rtp, b[:end], &roc)
	if subtle.ConstantTimeCompare(mac[:t.tagLen], b[len(b)-t.tagLen:]) != 1 {
		return 0, ErrAuth
	}
	if s == nil {
		s = f.add(ssrc, t.win)
		if s.win != nil {
			s.win.Check(index)
		}
	}
	if s.win != nil {
		s.win.commit()
	}
	s.update(roc, seq)
	f.xorKeystream(&k.rtp, ssrc, index, b[hl:end])
	return end, nil
}

func (t *native) protectRTCP(buf []byte, n int) (int, error) {
	b := buf[:n]
	ssrc := binary.BigEndian.Uint32(b[4:])
	f := &t.rtcp
	s := f.state(ssrc)
	if s == nil {
		s = f.add(ssrc, 0)
	}
	if s.index >= maxSRTCPIdx {
		return 0, ErrKeyExpired
	}
	s.index++
	k := &t.keys[0]
	f.xorKeystream(&k.rtcp, ssrc, uint64(s.index), b[8:])
	out := buf[:n+4+t.mkiLen+srtcpTagLen]
	binary.BigEndian.PutUint32(out[n:], 1<<31|s.index) // E flag: encrypted
	mac := f.tag(&k.rtcp, out[:n+4], nil)
	copy(out[n+4:], k.mki)
	copy(out[n+4+t.mkiLen:], mac[:srtcpTagLen])
	return len(out), nil
}

func (t *native) unprotectRTCP(b []byte) (int, error) {
	end := len(b) - srtcpTagLen - t.mkiLen // authenticated portion: b[:end]
	idx := end - 4
	if idx < 8 {
		return 0, ErrShortPacket
	}
	k := t.keyFor(b[end : end+t.mkiLen])
	if k == nil {
		return 0, ErrUnknownMKI
	}
	ssrc := binary.BigEndian.Uint32(b[4:])
	word := binary.BigEndian.Uint32(b[idx:])
	encrypted, index := word>>31 == 1, uint64(word&maxSRTCPIdx)
	f := &t.rtcp
	s := f.state(ssrc)
	if s != nil && s.win != nil {
		if _, ok := s.win.Check(index); !ok {
			return 0, ErrReplay
		}
	}
	mac := f.tag(&k.rtcp, b[:end], nil)
	if subtle.ConstantTimeCompare(mac[:srtcpTagLen], b[len(b)-srtcpTagLen:]) != 1 {
		return 0, ErrAuth
	}
	if s == nil {
		s = f.add(ssrc, t.win)
		if s.win != nil {
			s.win.max = maxSRTCPIdx
			s.win.Check(index)
		}
	}
	if s.win != nil {
		s.win.commit()
	}
	if encrypted {
		f.xorKeystream(&k.rtcp, ssrc, index, b[8:idx])
	}
	return idx, nil
}
