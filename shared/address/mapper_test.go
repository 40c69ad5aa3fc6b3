package address

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNewMapperNormalises(t *testing.T) {
	m, err := NewMapper(Config{
		SIPDomains:  []string{" Contoso.COM. ", "contoso.com", "XN--CAF-DMA.example"},
		XMPPGateway: "SIP.GW.example",
		XMPPDomains: []string{"xmpp.example"},
		SIPGateway:  " ",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		SIPDomains:  []string{"contoso.com", "café.example"},
		XMPPGateway: "sip.gw.example",
		XMPPDomains: []string{"xmpp.example"},
	}
	if !slices.Equal(m.cfg.SIPDomains, want.SIPDomains) || m.cfg.XMPPGateway != want.XMPPGateway ||
		!slices.Equal(m.cfg.XMPPDomains, want.XMPPDomains) || m.cfg.SIPGateway != want.SIPGateway {
		t.Errorf("normalised config = %+v, want %+v", m.cfg, want)
	}
}

func TestNewMapperRefuses(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		malformed bool   // also wraps ErrMalformed
		names     string // the error must name this
	}{
		{"empty entry", Config{SIPDomains: []string{"a.test", " "}}, true, "SIPDomains[1]"},
		{"invalid domain", Config{XMPPDomains: []string{"bad_domain"}}, true, "bad_domain"},
		{"invalid gateway", Config{XMPPGateway: "a b"}, true, "XMPPGateway"},
		{"invalid SIP gateway", Config{SIPGateway: "-x"}, true, "SIPGateway"},
		{"both sides", Config{SIPDomains: []string{"a.test", "shared.test"}, XMPPDomains: []string{"Shared.Test"}}, false, "shared.test"},
		{"gateway on both sides", Config{XMPPGateway: "gw.test", SIPGateway: "gw.test"}, false, "gw.test"},
		{"XMPP gateway is a SIP domain of sipside", Config{XMPPGateway: "gw.test", XMPPDomains: []string{"gw.test"}}, false, "gw.test"},
		{"XMPP gateway in SIPDomains", Config{XMPPGateway: "gw.test", SIPDomains: []string{"gw.test"}}, false, "SIPDomains"},
		{"SIP gateway in XMPPDomains", Config{SIPGateway: "gw.test", XMPPDomains: []string{"gw.test"}}, false, "XMPPDomains"},
	}
	for _, tt := range tests {
		_, err := NewMapper(tt.cfg)
		if !errors.Is(err, ErrConfig) || errors.Is(err, ErrMalformed) != tt.malformed || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("%s: NewMapper error = %v; want ErrConfig (malformed %v) naming %q", tt.name, err, tt.malformed, tt.names)
		}
	}
}

func TestServes(t *testing.T) {
	m := mustMapper(t, bothModes)
	var zero Mapper
	tests := []struct {
		domain    string
		xmpp, sip bool
	}{
		{"xmpp.test", true, false},
		{"XMPP.Test.", true, false},
		{"xmpp.gw.test", true, false},
		{"sip.test", false, true},
		{"SIP.GW.test", false, true},
		{"jabber.org", false, false},
		{"", false, false},
		{"bad domain", false, false},
	}
	for _, tt := range tests {
		if got := m.ServesXMPPDomain(tt.domain); got != tt.xmpp {
			t.Errorf("ServesXMPPDomain(%q) = %v, want %v", tt.domain, got, tt.xmpp)
		}
		if got := m.ServesSIPDomain(tt.domain); got != tt.sip {
			t.Errorf("ServesSIPDomain(%q) = %v, want %v", tt.domain, got, tt.sip)
		}
		if zero.ServesXMPPDomain(tt.domain) || zero.ServesSIPDomain(tt.domain) {
			t.Errorf("zero Mapper serves %q", tt.domain)
		}
	}
}
