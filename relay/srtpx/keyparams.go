// Package srtpx is SDES-SRTP for the media relay: the RFC 4568 crypto
// attribute and its inline key parameters (lifetime, MKI as Lync sends it),
// and per-direction SRTP/SRTCP contexts for AES_CM_128_HMAC_SHA1_80 and _32
// that protect and unprotect packets in place. Two implementations sit
// behind a Context: pion/srtp v2 (which supports MKI) and a native
// AES-CM/HMAC-SHA1 transform that allocates nothing per packet, the
// default; both are checked against RFC 3711 Appendix B, libsrtp's
// reference packet and each other.
//
// It must not know about sockets, calls, SDP lines or Jingle elements: the
// strings it parses are the values both carry (the a=crypto value, the
// <crypto/> element's attributes).
package srtpx

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrSyntax              = errors.New("srtpx: malformed crypto attribute")
	ErrUnknownSuite        = errors.New("srtpx: unsupported crypto suite")
	ErrKeyLength           = errors.New("srtpx: key||salt has the wrong length for the suite")
	ErrMKI                 = errors.New("srtpx: bad MKI")
	ErrSessionParam        = errors.New("srtpx: unsupported session parameter")
	ErrNoKey               = errors.New("srtpx: no master key")
	ErrUnknownMKI          = errors.New("srtpx: packet MKI matches no key")
	ErrAuth                = errors.New("srtpx: authentication failed")
	ErrReplay              = errors.New("srtpx: replayed or too old packet")
	ErrKeyExpired          = errors.New("srtpx: master key lifetime exhausted")
	ErrBufferSize          = errors.New("srtpx: buffer too small for the SRTP overhead")
	ErrShortPacket         = errors.New("srtpx: packet too short")
	errHeaderSizeUnchanged = errors.New("srtpx: header does not re-marshal to its size")
)

// Suite is an SRTP crypto suite of RFC 4568 §6.2.
type Suite uint8

// The suites the relay offers and accepts.
const (
	SuiteUnknown Suite = iota
	AES_CM_128_HMAC_SHA1_80
	AES_CM_128_HMAC_SHA1_32
)

// Sizes shared by both suites (RFC 4568 §6.2.1/6.2.2).
const (
	KeyLen    = 16
	SaltLen   = 14
	MasterLen = KeyLen + SaltLen
)

var suiteNames = map[Suite]string{
	AES_CM_128_HMAC_SHA1_80: "AES_CM_128_HMAC_SHA1_80",
	AES_CM_128_HMAC_SHA1_32: "AES_CM_128_HMAC_SHA1_32",
}

func (s Suite) String() string {
	if n, ok := suiteNames[s]; ok {
		return n
	}
	return "unknown"
}

// ParseSuite reads a crypto-suite name.
func ParseSuite(name string) (Suite, error) {
	for s, n := range suiteNames {
		if n == name {
			return s, nil
		}
	}
	return SuiteUnknown, fmt.Errorf("%w: %q", ErrUnknownSuite, name)
}

// TagLen is the SRTP authentication tag length (the SRTCP tag is always 10).
func (s Suite) TagLen() int {
	if s == AES_CM_128_HMAC_SHA1_32 {
		return 4
	}
	return 10
}

// MarshalText implements encoding.TextMarshaler.
func (s Suite) MarshalText() ([]byte, error) {
	if _, ok := suiteNames[s]; !ok {
		return nil, ErrUnknownSuite
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Suite) UnmarshalText(b []byte) error {
	v, err := ParseSuite(string(b))
	*s = v
	return err
}

// MKI is a master key identifier (RFC 3711 §3.1): Len bytes carrying Value
// big-endian at the end of every packet, before the tag. Lync's "|1:1" is
// Value 1, Len 1. The zero MKI (Len 0) means none.
type MKI struct {
	Value uint64 `json:"value"`
	Len   uint8  `json:"len"`
}

// maxMKILen is RFC 4568's 128; values are kept in a uint64, so longer MKIs
// can only carry values that fit, left-padded with zeros.
const maxMKILen = 128

// Bytes is the MKI as it appears on the wire.
func (m MKI) Bytes() []byte {
	if m.Len == 0 {
		return nil
	}
	b := make([]byte, m.Len)
	v := m.Value
	for i := len(b) - 1; i >= 0 && v != 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func (m MKI) valid() bool {
	if m.Len == 0 {
		return m.Value == 0
	}
	if m.Len > maxMKILen {
		return false
	}
	return m.Len >= 8 || m.Value>>(8*uint(m.Len)) == 0
}

// KeyParams is one inline key (RFC 4568 §9): master key||salt, optional
// lifetime in packets (0: not given, the suite's 2^48 / 2^31 limits apply)
// and optional MKI.
type KeyParams struct {
	Master   [MasterLen]byte `json:"master"`
	Lifetime uint64          `json:"lifetime,omitempty"`
	MKI      MKI             `json:"mki,omitzero"`
}

// Key and Salt split Master.
func (k *KeyParams) Key() []byte  { return k.Master[:KeyLen] }
func (k *KeyParams) Salt() []byte { return k.Master[KeyLen:] }

// NewKeyParams generates a fresh random master key and salt.
func NewKeyParams() (KeyParams, error) {
	var k KeyParams
	if _, err := rand.Read(k.Master[:]); err != nil {
		return k, fmt.Errorf("srtpx: generating key: %w", err)
	}
	return k, nil
}

// ParseKeyParams reads "inline:<base64 key||salt>[|<lifetime>][|<mki>:<len>]".
func ParseKeyParams(s string) (KeyParams, error) {
	var k KeyParams
	method, info, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return k, fmt.Errorf("%w: key method in %q", ErrSyntax, s)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return k, fmt.Errorf("%w: too many fields in %q", ErrSyntax, s)
	}
	raw, err := decodeBase64(parts[0])
	if err != nil {
		return k, fmt.Errorf("%w: key: %v", ErrSyntax, err)
	}
	if len(raw) != MasterLen {
		return k, fmt.Errorf("%w: %d bytes, want %d", ErrKeyLength, len(raw), MasterLen)
	}
	copy(k.Master[:], raw)
	rest := parts[1:]
	// The lifetime comes before the MKI; a lone field with ':' is an MKI.
	if len(rest) > 0 && !strings.Contains(rest[0], ":") {
		if k.Lifetime, err = parseLifetime(rest[0]); err != nil {
			return k, err
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if k.MKI, err = parseMKI(rest[0]); err != nil {
			return k, err
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return k, fmt.Errorf("%w: trailing %q", ErrSyntax, strings.Join(rest, "|"))
	}
	return k, nil
}

func decodeBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.Strict().DecodeString(s)
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

func parseLifetime(s string) (uint64, error) {
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, err := strconv.ParseUint(e, 10, 8)
		if err != nil || n > 63 || !allDigits(e) {
			return 0, fmt.Errorf("%w: lifetime %q", ErrSyntax, s)
		}
		return 1 << n, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || !allDigits(s) {
		return 0, fmt.Errorf("%w: lifetime %q", ErrSyntax, s)
	}
	return n, nil
}

func parseMKI(s string) (MKI, error) {
	v, l, _ := strings.Cut(s, ":")
	val, err1 := strconv.ParseUint(v, 10, 64)
	n, err2 := strconv.ParseUint(l, 10, 8)
	m := MKI{Value: val, Len: uint8(n)}
	if err1 != nil || err2 != nil || !allDigits(v) || !allDigits(l) || len(l) > 3 || n < 1 || !m.valid() {
		return MKI{}, fmt.Errorf("%w: %q", ErrMKI, s)
	}
	return m, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the key parameters canonically: padded base64, a lifetime
// that is a power of two as "2^n".
func (k KeyParams) String() string {
	var b strings.Builder
	b.WriteString("inline:")
	b.WriteString(base64.StdEncoding.EncodeToString(k.Master[:]))
	if k.Lifetime != 0 {
		b.WriteByte('|')
		if k.Lifetime&(k.Lifetime-1) == 0 {
			b.WriteString("2^")
			b.WriteString(strconv.Itoa(bits.TrailingZeros64(k.Lifetime)))
		} else {
			b.WriteString(strconv.FormatUint(k.Lifetime, 10))
		}
	}
	if k.MKI.Len != 0 {
		b.WriteByte('|')
		b.WriteString(strconv.FormatUint(k.MKI.Value, 10))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(k.MKI.Len)))
	}
	return b.String()
}

// Crypto is one crypto offer or answer (RFC 4568 §9.1: the a=crypto value;
// XEP-0167's <crypto tag crypto-suite key-params session-params/>).
type Crypto struct {
	Tag   int         `json:"tag"`
	Suite Suite       `json:"suite"`
	Keys  []KeyParams `json:"keys"`
	// SessionParams are kept as written; Check rejects those the relay
	// cannot honour.
	SessionParams []string `json:"session_params,omitempty"`
}

// ParseCrypto reads "<tag> <suite> <key-params>[;<key-params>...] [<session-params>...]".
func ParseCrypto(s string) (Crypto, error) {
	var c Crypto
	f := strings.Fields(s)
	if len(f) < 3 {
		return c, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	tag, err := strconv.ParseUint(f[0], 10, 30)
	if err != nil || len(f[0]) > 10 || !allDigits(f[0]) {
		return c, fmt.Errorf("%w: tag %q", ErrSyntax, f[0])
	}
	c.Tag = int(tag)
	if c.Suite, err = ParseSuite(f[1]); err != nil {
		return c, err
	}
	for _, kp := range strings.Split(f[2], ";") {
		k, err := ParseKeyParams(kp)
		if err != nil {
			return c, err
		}
		c.Keys = append(c.Keys, k)
	}
	if len(f) > 3 {
		c.SessionParams = f[3:]
	}
	return c, c.checkKeys()
}

// checkKeys applies RFC 4568 §9.2: several keys need MKIs of one length and
// distinct values.
func (c *Crypto) checkKeys() error {
	if len(c.Keys) == 0 {
		return ErrNoKey
	}
	l := c.Keys[0].MKI.Len
	for i, k := range c.Keys {
		if !k.MKI.valid() || k.MKI.Len != l || (len(c.Keys) > 1 && l == 0) {
			return fmt.Errorf("%w: keys need MKIs of one length to be told apart", ErrMKI)
		}
		for _, o := range c.Keys[:i] {
			if o.MKI == k.MKI {
				return fmt.Errorf("%w: MKI %d used twice", ErrMKI, k.MKI.Value)
			}
		}
	}
	return nil
}

// Check reports whether the relay can use c: a known suite, sound keys and
// no session parameter that changes the transform (UNENCRYPTED_SRTP,
// UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, a non-zero KDR). WSH and
// FEC_ORDER/FEC_KEY hints are ignored, as RFC 4568 allows.
func (c *Crypto) Check() error {
	if _, ok := suiteNames[c.Suite]; !ok {
		return ErrUnknownSuite
	}
	if err := c.checkKeys(); err != nil {
		return err
	}
	for _, p := range c.SessionParams {
		name, val, _ := strings.Cut(p, "=")
		switch {
		case name == "KDR" && val == "0":
		case name == "WSH" || name == "FEC_ORDER" || name == "FEC_KEY":
		default:
			return fmt.Errorf("%w: %s", ErrSessionParam, p)
		}
	}
	return nil
}

// String formats c as an a=crypto value.
func (c Crypto) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Tag))
	b.WriteByte(' ')
	b.WriteString(c.Suite.String())
	b.WriteByte(' ')
	for i, k := range c.Keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k.String())
	}
	for _, p := range c.SessionParams {
		b.WriteByte(' ')
		b.WriteString(p)
	}
	return b.String()
}
