package sipside

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/parleygw/parley/shared/config"
)

// maxDeliveryWait keeps an inbound MESSAGE's answer well inside the UAC's
// Timer F (64·T1 = 32 s): past it the sender has given up anyway.
const maxDeliveryWait = 30 * time.Second

// settings is config.SIP checked and parsed once, in New.
type settings struct {
	listenUDP, listenTCP, listenTLS string
	tlsConfig                       *tls.Config

	outboundProxy netip.AddrPort
	trusted       []netip.Prefix

	deliveryWait    time.Duration
	maxMessageBytes int
}

// parseSettings validates cfg. Every address must be an IP literal: Parley
// never resolves names on the SIP path.
func parseSettings(cfg config.SIP) (settings, error) {
	var (
		st   settings
		errs []error
	)
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sip.%s: %s", key, fmt.Sprintf(format, args...)))
	}

	for _, l := range []struct {
		key, val string
		dst      *string
	}{
		{"listen_udp", cfg.ListenUDP, &st.listenUDP},
		{"listen_tcp", cfg.ListenTCP, &st.listenTCP},
		{"listen_tls", cfg.ListenTLS, &st.listenTLS},
	} {
		if l.val == "" {
			continue
		}
		if err := checkListenAddr(l.val); err != nil {
			bad(l.key, "%v", err)
			continue
		}
		*l.dst = l.val
	}
	if cfg.ListenUDP == "" && cfg.ListenTCP == "" && cfg.ListenTLS == "" {
		bad("listen_udp", "no listener: set listen_udp, listen_tcp or listen_tls")
	}
	if cfg.ListenTLS != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			bad("listen_tls", "needs tls_cert and tls_key")
		} else if cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			// The error names the files, never their contents.
			bad("tls_cert", "load key pair: %v", err)
		} else {
			st.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}

	if cfg.OutboundProxy == "" {
		bad("outbound_proxy", "required (IP:port of the proxy that receives every request)")
	} else if ap, err := netip.ParseAddrPort(cfg.OutboundProxy); err != nil {
		bad("outbound_proxy", "%q is not an IP literal host:port: %v", cfg.OutboundProxy, err)
	} else if ap.Port() == 0 {
		bad("outbound_proxy", "%q: port 0", cfg.OutboundProxy)
	} else {
		st.outboundProxy = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}

	if len(cfg.TrustedProxies) == 0 {
		bad("trusted_proxies", "empty: every request would be refused")
	}
	for _, t := range cfg.TrustedProxies {
		p, err := parseTrusted(t)
		if err != nil {
			bad("trusted_proxies", "%v", err)
			continue
		}
		st.trusted = append(st.trusted, p)
	}

	st.deliveryWait = cfg.DeliveryWait.Duration
	if st.deliveryWait < 0 || st.deliveryWait > maxDeliveryWait {
		bad("delivery_wait", "%v is outside 0..%v", st.deliveryWait, maxDeliveryWait)
	}
	st.maxMessageBytes = cfg.MaxMessageBytes
	if st.maxMessageBytes <= 0 {
		bad("max_message_bytes", "must be positive (got %d)", st.maxMessageBytes)
	}
	return st, errors.Join(errs...)
}

// checkListenAddr accepts "IP:port" and ":port" (all interfaces).
func checkListenAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host must be an IP literal", s)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// parseTrusted reads an IP address or a CIDR prefix.
func parseTrusted(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix: %v", s, err)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%q: IPv4-mapped prefix shorter than /96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
