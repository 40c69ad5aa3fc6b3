package sipside

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Who may talk to sipside (DESIGN §6): only the configured proxies, and
// never on behalf of a user of a domain Parley itself serves on the XMPP
// side (such a request is forged: those users reach SIP only through us).

var errServedIdentity = errors.New("identity in a domain served by this gateway")

// trustedSource reports whether the request's transport source is one of
// the trusted proxies.
func (s *Server) trustedSource(req *sip.Request) (netip.Addr, bool) {
	a := sourceIP(req)
	for _, p := range s.st.trusted {
		if p.Contains(a) {
			return a, true
		}
	}
	return a, false
}

// sourceIP is the transport source address of req (invalid when unknown).
func sourceIP(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// servedIdentity returns the first identity (From, then each
// P-Asserted-Identity) whose host is a domain Parley serves on the XMPP
// side, or "" when there is none.
func (s *Server) servedIdentity(req *sip.Request) string {
	if f := req.From(); f != nil && s.servesHost(f.Address.Host) {
		return f.Address.Addr()
	}
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitAddressList(h.Value()) {
			var u sip.Uri
			if _, err := sip.ParseAddressValue(v, &u, nil); err != nil {
				continue // tel: or garbage: no domain to check
			}
			if s.servesHost(u.Host) {
				return u.Addr()
			}
		}
	}
	return ""
}

func (s *Server) servesHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host != "" && s.mapper.ServesXMPPDomain(host)
}

// splitAddressList splits a header value holding comma-separated
// name-addr/addr-spec values, ignoring commas inside quotes and <>.
func splitAddressList(v string) []string {
	var (
		out          []string
		start        int
		quoted, angl bool
	)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angl = true
		case c == '>' && !quoted:
			angl = false
		case c == ',' && !quoted && !angl:
			out = appendTrimmed(out, v[start:i])
			start = i + 1
		}
	}
	return appendTrimmed(out, v[start:])
}

func appendTrimmed(out []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		out = append(out, s)
	}
	return out
}

// rateLimiter lets one log line per key through per interval and counts
// what it held back, so a flood from one source cannot flood the log.
type rateLimiter struct {
	interval time.Duration
	max      int // keys remembered; the map is reset when full

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newRateLimiter(interval time.Duration, max int) *rateLimiter {
	return &rateLimiter{interval: interval, max: max, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether to log for key now, and how many lines for key
// were suppressed since the last one allowed.
func (r *rateLimiter) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.interval {
		r.held[key]++
		return false, 0
	}
	if len(r.last) >= r.max {
		r.last, r.held = map[string]time.Time{}, map[string]int{}
	}
	n := r.held[key]
	delete(r.held, key)
	r.last[key] = now
	return true, n
}

// checkSource refuses requests that do not come from a trusted proxy.
func (s *Server) checkSource(req *sip.Request) *sipError {
	src, ok := s.trustedSource(req)
	if ok {
		return nil
	}
	s.metrics.trustRejects.WithLabelValues(rejectUntrustedSource).Inc()
	if allow, held := s.trustLog.allow(src.String(), time.Now()); allow {
		s.log.Warn("SIP request from an untrusted source refused",
			"source", req.Source(), "method", string(req.Method), "call_id", callID(req),
			"suppressed_since_last", held)
	}
	return refuse(403, "", fmt.Errorf("source %s is not a trusted proxy", req.Source()))
}

// checkIdentity refuses requests that claim to come from a user of a domain
// Parley serves on the XMPP side.
func (s *Server) checkIdentity(req *sip.Request) *sipError {
	id := s.servedIdentity(req)
	if id == "" {
		return nil
	}
	s.metrics.trustRejects.WithLabelValues(rejectServedIdentity).Inc()
	if allow, held := s.trustLog.allow("identity:"+sourceIP(req).String(), time.Now()); allow {
		s.log.Warn("SIP request claiming an identity Parley serves refused",
			"identity", id, "source", req.Source(), "method", string(req.Method),
			"call_id", callID(req), "suppressed_since_last", held)
	}
	return refuse(403, errServedIdentity.Error(), fmt.Errorf("%s: %w", id, errServedIdentity))
}
