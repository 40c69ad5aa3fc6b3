package srtpx

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// Lync's offer lines (lync-dialect.md §4.4): with MKI and without.
const (
	lyncMKI   = "2 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:1"
	lyncNoMKI = "3 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31"
)

func TestParseCryptoLync(t *testing.T) {
	c, err := ParseCrypto(lyncMKI)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tag != 2 || c.Suite != AES_CM_128_HMAC_SHA1_80 || len(c.Keys) != 1 {
		t.Fatalf("%+v", c)
	}
	k := c.Keys[0]
	if k.Lifetime != 1<<31 || k.MKI != (MKI{Value: 1, Len: 1}) {
		t.Fatalf("lifetime %d MKI %+v", k.Lifetime, k.MKI)
	}
	if string(k.Master[:4]) != "wDfv" && k.Master[0] != 0x77 {
		t.Fatalf("key % x", k.Master[:4])
	}
	if got := c.String(); got != lyncMKI {
		t.Fatalf("String() = %q, want %q", got, lyncMKI)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCrypto(lyncNoMKI)
	if err != nil || c2.Keys[0].MKI.Len != 0 || c2.Keys[0].Lifetime != 1<<31 {
		t.Fatalf("%+v %v", c2, err)
	}
}

func TestParseKeyParamsForms(t *testing.T) {
	key := "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj"
	for _, c := range []struct {
		in   string
		life uint64
		mki  MKI
		err  error
	}{
		{"inline:" + key, 0, MKI{}, nil},
		{"INLINE:" + key, 0, MKI{}, nil},
		{"inline:" + key + "|1048576", 1 << 20, MKI{}, nil},
		{"inline:" + key + "|2^20|1:4", 1 << 20, MKI{Value: 1, Len: 4}, nil},
		{"inline:" + key + "|7:2", 0, MKI{Value: 7, Len: 2}, nil},
		{"inline:" + key + "|256:1", 0, MKI{}, ErrMKI},
		{"inline:" + key + "|1:0", 0, MKI{}, ErrMKI},
		{"inline:" + key + "|1:129", 0, MKI{}, ErrMKI},
		{"inline:" + key + "|2^x", 0, MKI{}, ErrSyntax},
		{"inline:" + key + "|2^31|1:1|x", 0, MKI{}, ErrSyntax},
		{"inline:" + key[:20], 0, MKI{}, ErrKeyLength},
		{"inline:!!!", 0, MKI{}, ErrSyntax},
		{"uri:" + key, 0, MKI{}, ErrSyntax},
		{"inline:" + key + "|+5", 0, MKI{}, ErrSyntax},
	} {
		k, err := ParseKeyParams(c.in)
		if !errors.Is(err, c.err) {
			t.Errorf("%q: err %v, want %v", c.in, err, c.err)
			continue
		}
		if err == nil && (k.Lifetime != c.life || k.MKI != c.mki) {
			t.Errorf("%q: lifetime %d MKI %+v", c.in, k.Lifetime, k.MKI)
		}
	}
}

func TestCryptoCheck(t *testing.T) {
	for _, c := range []struct {
		in  string
		err error
	}{
		{lyncNoMKI, nil},
		{lyncNoMKI + " WSH=64", nil},
		{lyncNoMKI + " KDR=0", nil},
		{lyncNoMKI + " UNENCRYPTED_SRTCP", ErrSessionParam},
		{lyncNoMKI + " KDR=24", ErrSessionParam},
		{"1 F8_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", ErrUnknownSuite},
	} {
		cr, err := ParseCrypto(c.in)
		if err == nil {
			err = cr.Check()
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%q: %v, want %v", c.in, err, c.err)
		}
	}
	// Two keys without MKIs cannot be told apart.
	_, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj;inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj")
	if !errors.Is(err, ErrMKI) {
		t.Fatalf("two keys, no MKI: %v", err)
	}
}

func TestCryptoJSONRoundTrip(t *testing.T) {
	c, _ := ParseCrypto(lyncMKI + " WSH=64")
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var d Crypto
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("JSON round trip\n got %+v\nwant %+v", d, c)
	}
}

// FuzzParseCrypto: no panics; whatever parses formats to a string that
// parses to the same value (and formats identically: canonical form).
func FuzzParseCrypto(f *testing.F) {
	f.Add(lyncMKI)
	f.Add(lyncNoMKI + " WSH=64")
	f.Add("1 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4;inline:QUJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0|2^20|2:4")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCrypto(s)
		if err != nil {
			return
		}
		_ = c.Check()
		out := c.String()
		d, err := ParseCrypto(out)
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", s, out, err)
		}
		if !reflect.DeepEqual(c, d) || d.String() != out {
			t.Fatalf("round trip %q → %q → %+v", s, out, d)
		}
	})
}

// FuzzParseKeyParams: no panics; round trip through String.
func FuzzParseKeyParams(f *testing.F) {
	f.Add("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:1")
	f.Add("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|1000")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyParams(s)
		if err != nil {
			return
		}
		k2, err := ParseKeyParams(k.String())
		if err != nil || k2 != k {
			t.Fatalf("%q → %q → %+v, %v", s, k.String(), k2, err)
		}
	})
}
