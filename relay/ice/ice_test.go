package ice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun"
)

var (
	local  = Credentials{Ufrag: "rlyU", Pwd: "relaypasswordrelaypassw0"}
	remote = Credentials{Ufrag: "peer", Pwd: "peerpasswordpeerpasswor"}
	src    = netip.MustParseAddrPort("127.0.0.1:40000")
)

type rawAttr struct {
	t stun.AttrType
	v []byte
}

func (a rawAttr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

// check builds a connectivity check as a controlling full agent sends it.
func check(t testing.TB, user, pwd string, extra ...stun.Setter) []byte {
	t.Helper()
	prio := make([]byte, 4)
	binary.BigEndian.PutUint32(prio, 1853824767)
	s := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user),
		rawAttr{stun.AttrPriority, prio}}
	s = append(s, extra...)
	s = append(s, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	m, err := stun.Build(s...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func controlling() stun.Setter  { return rawAttr{stun.AttrICEControlling, make([]byte, 8)} }
func useCandidate() stun.Setter { return rawAttr{stun.AttrUseCandidate, nil} }

func TestCredentials(t *testing.T) {
	c, err := NewCredentials()
	if err != nil || c.Validate() != nil {
		t.Fatalf("%+v %v", c, err)
	}
	d, _ := NewCredentials()
	if c == d {
		t.Fatal("two credentials alike")
	}
	for _, bad := range []Credentials{{"abc", local.Pwd}, {local.Ufrag, "short"}, {"ab c", local.Pwd}} {
		if !errors.Is(bad.Validate(), ErrCredentials) {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestBindingSuccess(t *testing.T) {
	r := Responder{Local: local, Remote: remote, Software: "parley"}
	req := check(t, local.Ufrag+":"+remote.Ufrag, local.Pwd, controlling(), useCandidate())
	if u, ok := LocalUfrag(req); !ok || string(u) != local.Ufrag {
		t.Fatalf("LocalUfrag = %q %v", u, ok)
	}
	out := make([]byte, 512)
	resp, c, err := r.Handle(req, src, out)
	if err != nil {
		t.Fatal(err)
	}
	if !c.UseCandidate || c.Priority != 1853824767 || c.RemoteUfrag != remote.Ufrag || c.Source != src {
		t.Fatalf("check %+v", c)
	}
	m := &stun.Message{Raw: resp}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	var reqm stun.Message
	reqm.Raw = req
	_ = reqm.Decode()
	if m.Type != stun.BindingSuccess || m.TransactionID != reqm.TransactionID {
		t.Fatalf("type %v tid match %v", m.Type, m.TransactionID == reqm.TransactionID)
	}
	if err := stun.NewShortTermIntegrity(local.Pwd).Check(m); err != nil {
		t.Fatalf("response integrity: %v", err)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Fatalf("response fingerprint: %v", err)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil || xa.Port != 40000 || !xa.IP.Equal(src.Addr().AsSlice()) {
		t.Fatalf("XOR-MAPPED-ADDRESS %v %v", xa, err)
	}
}

func TestRefusals(t *testing.T) {
	r := Responder{Local: local, Remote: remote}
	out := make([]byte, 512)
	code := func(resp []byte) stun.ErrorCode {
		m := &stun.Message{Raw: resp}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			t.Fatal(err)
		}
		return ec.Code
	}
	// Wrong password → 401.
	resp, _, err := r.Handle(check(t, local.Ufrag+":"+remote.Ufrag, "wrongpasswordwrongpassw"), src, out)
	if !errors.Is(err, ErrIntegrity) || code(resp) != stun.CodeUnauthorized {
		t.Fatalf("bad MI: %v", err)
	}
	// Stale remote ufrag → 401.
	resp, _, err = r.Handle(check(t, local.Ufrag+":old1", local.Pwd), src, out)
	if !errors.Is(err, ErrUsername) || code(resp) != stun.CodeUnauthorized {
		t.Fatalf("stale ufrag: %v", err)
	}
	// Both controlled → 487 with integrity.
	resp, _, err = r.Handle(check(t, local.Ufrag+":"+remote.Ufrag, local.Pwd, rawAttr{stun.AttrICEControlled, make([]byte, 8)}), src, out)
	if !errors.Is(err, ErrRoleConflict) || code(resp) != stun.CodeRoleConflict {
		t.Fatalf("role conflict: %v", err)
	}
	// No USERNAME / MI → 400.
	m, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	resp, _, err = r.Handle(m.Raw, src, out)
	if !errors.Is(err, ErrBadRequest) || code(resp) != stun.CodeBadRequest {
		t.Fatalf("no credentials: %v", err)
	}
	// Broken FINGERPRINT → silently dropped.
	req := check(t, local.Ufrag+":"+remote.Ufrag, local.Pwd)
	req[len(req)-1] ^= 0xff
	if resp, _, err := r.Handle(req, src, out); resp != nil || !errors.Is(err, ErrFingerprint) {
		t.Fatalf("bad fingerprint answered: %v", err)
	}
	// Indication → no answer.
	ind, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication), stun.Fingerprint)
	if resp, _, err := r.Handle(ind.Raw, src, out); resp != nil || !errors.Is(err, ErrNotRequest) {
		t.Fatalf("indication answered: %v", err)
	}
	// RTP is not STUN.
	if _, _, err := r.Handle([]byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, src, out); !errors.Is(err, ErrNotSTUN) {
		t.Fatalf("RTP: %v", err)
	}
}

func TestChecksBeforeRemoteKnown(t *testing.T) {
	r := Responder{Local: local}
	if _, c, err := r.Handle(check(t, local.Ufrag+":"+remote.Ufrag, local.Pwd), src, make([]byte, 512)); err != nil || c.RemoteUfrag != remote.Ufrag {
		t.Fatalf("early check: %v", err)
	}
}

func TestConsent(t *testing.T) {
	var c Consent
	now := time.Unix(1000, 0)
	if c.Granted(now) {
		t.Fatal("zero Consent granted")
	}
	c.Refresh(now)
	if !c.Granted(now.Add(29*time.Second)) || c.Granted(now.Add(30*time.Second)) {
		t.Fatal("30 s default consent window")
	}
}

// FuzzHandle: arbitrary datagrams never panic; LocalUfrag never panics and
// agrees with Handle on every check Handle accepts.
func FuzzHandle(f *testing.F) {
	f.Add(check(f, local.Ufrag+":"+remote.Ufrag, local.Pwd, controlling(), useCandidate()))
	f.Add(check(f, "x:y", "z"))
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	r := Responder{Local: local}
	out := make([]byte, 1500)
	f.Fuzz(func(t *testing.T, b []byte) {
		u, uok := LocalUfrag(b)
		resp, _, err := r.Handle(b, src, out)
		if err == nil {
			if !uok || !bytes.Equal(u, []byte(local.Ufrag)) {
				t.Fatalf("Handle accepted a check LocalUfrag reads as %q", u)
			}
			m := &stun.Message{Raw: resp}
			if m.Decode() != nil || stun.NewShortTermIntegrity(local.Pwd).Check(m) != nil {
				t.Fatal("success response does not verify")
			}
		}
	})
}

func BenchmarkHandle(b *testing.B) {
	r := Responder{Local: local, Remote: remote}
	req := check(b, local.Ufrag+":"+remote.Ufrag, local.Pwd, controlling())
	out := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Handle(req, src, out); err != nil {
			b.Fatal(err)
		}
	}
}
