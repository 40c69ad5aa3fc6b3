package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a configuration, located by key and, when
// it came from a file, line.
type Problem struct {
	Key  string // dotted key, e.g. "sip.outbound_proxy"
	Line int    // 1-based line in the file; 0 when the value is a default
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s (default): %s", p.Key, p.Msg)
}

// Problems is the error Load returns when the file is readable but wrong.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads path over the defaults and validates the result. An empty path
// means defaults only. The error is a Problems list when the file parsed.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, validate(&cfg, nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	return cfg, Parse(data, &cfg)
}

// Parse decodes TOML data over cfg and validates it.
func Parse(data []byte, cfg *Config) error {
	lines := indexKeys(data)
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key := pe.LastKey
			if key == "" {
				key = "(syntax)"
			}
			return Problems{{Key: key, Line: pe.Position.Line, Msg: pe.Message}}
		}
		return fmt.Errorf("parse config: %w", err)
	}
	var ps Problems
	for _, k := range md.Undecoded() {
		ps = append(ps, Problem{Key: k.String(), Line: lines[k.String()], Msg: "unknown key (misspelt, or not in this version of Parley)"})
	}
	if err := validate(cfg, lines); err != nil {
		ps = append(ps, err.(Problems)...)
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

var (
	tableRe = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]`)
	keyRe   = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\s*=`)
)

// indexKeys finds the line of each "table.key" in a TOML file, so that
// semantic errors can point at a line as parse errors do.
func indexKeys(data []byte) map[string]int {
	lines := map[string]int{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := tableRe.FindStringSubmatch(line); m != nil {
			table = m[1]
			lines[table] = n
			continue
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			k := m[1]
			if table != "" {
				k = table + "." + k
			}
			lines[k] = n
		}
	}
	return lines
}

func validate(c *Config, lines map[string]int) error {
	var ps Problems
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Line: lines[key], Msg: fmt.Sprintf(format, args...)})
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Store.Backend {
	case "memory":
	case "redis":
		if u, err := url.Parse(c.Store.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("store.redis_url", "must be redis://host:port/db or rediss://… (got %q)", RedactURL(c.Store.RedisURL))
		}
	default:
		bad("store.backend", "%q is not memory or redis", c.Store.Backend)
	}

	if err := hostPort(c.Component.Server); err != nil {
		bad("component.server", "%v", err)
	}
	if c.Component.Secret == "" && c.Component.SecretFile == "" {
		bad("component.secret_file", "no component secret: set secret_file (preferred) or secret")
	}
	if len(c.Component.Domains) == 0 && c.Component.GatewayDomain == "" {
		bad("component.domains", "the component serves no domain: list the SIP domains to appear as XMPP domains")
	}
	for _, d := range c.Component.Domains {
		if !validDomain(d) {
			bad("component.domains", "%q is not a domain name", d)
		}
	}
	if c.Component.GatewayDomain != "" && !validDomain(c.Component.GatewayDomain) {
		bad("component.gateway_domain", "%q is not a domain name", c.Component.GatewayDomain)
	}
	if c.Component.PingInterval.Duration <= 0 {
		bad("component.ping_interval", "must be positive, e.g. \"60s\"")
	}
	if c.Component.MaxStanzaBytes < 10000 {
		bad("component.max_stanza_bytes", "must be at least 10000 (RFC 6120 §13.12)")
	}

	if c.SIP.ListenUDP == "" && c.SIP.ListenTCP == "" && c.SIP.ListenTLS == "" {
		bad("sip.listen_udp", "no SIP listener: set listen_udp, listen_tcp or listen_tls")
	}
	for key, v := range map[string]string{"sip.listen_udp": c.SIP.ListenUDP, "sip.listen_tcp": c.SIP.ListenTCP, "sip.listen_tls": c.SIP.ListenTLS} {
		if v != "" {
			if err := hostPort(v); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	if c.SIP.ListenTLS != "" && (c.SIP.TLSCert == "" || c.SIP.TLSKey == "") {
		bad("sip.listen_tls", "a TLS listener needs tls_cert and tls_key")
	}
	if len(c.SIP.Domains) == 0 && c.SIP.GatewayDomain == "" {
		bad("sip.domains", "the SIP side serves no domain: list the XMPP domains to appear as SIP domains")
	}
	for _, d := range c.SIP.Domains {
		if !validDomain(d) {
			bad("sip.domains", "%q is not a domain name", d)
		}
		for _, o := range c.Component.Domains {
			if strings.EqualFold(d, o) {
				bad("sip.domains", "%q is also in component.domains: a domain is served on one side only", d)
			}
		}
	}
	if ap, err := netip.ParseAddrPort(c.SIP.OutboundProxy); err != nil {
		bad("sip.outbound_proxy", "must be an IP literal with port, e.g. 127.0.0.1:5060 (got %q)", c.SIP.OutboundProxy)
	} else if !ap.Addr().IsValid() {
		bad("sip.outbound_proxy", "invalid address %q", c.SIP.OutboundProxy)
	}
	if len(c.SIP.TrustedProxies) == 0 {
		bad("sip.trusted_proxies", "empty: every SIP request would be refused; list your proxy's address")
	}
	for _, tp := range c.SIP.TrustedProxies {
		if _, err := netip.ParsePrefix(tp); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(tp); err != nil {
			bad("sip.trusted_proxies", "%q is neither an IP address nor a CIDR", tp)
		}
	}
	if c.SIP.DeliveryWait.Duration <= 0 {
		bad("sip.delivery_wait", "must be positive, e.g. \"2s\"")
	}
	if c.SIP.MaxMessageBytes < 1300 {
		bad("sip.max_message_bytes", "must be at least 1300")
	}
	if c.Metrics.Listen != "" {
		if err := hostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

func hostPort(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	return nil
}

var domainRe = regexp.MustCompile(`^(?i)[a-z0-9\p{L}]([a-z0-9\p{L}\-]{0,61}[a-z0-9\p{L}])?(\.[a-z0-9\p{L}]([a-z0-9\p{L}\-]{0,61}[a-z0-9\p{L}])?)*$`)

func validDomain(d string) bool { return len(d) <= 253 && domainRe.MatchString(d) }

// RedactURL hides a password in a URL so it can be logged.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// LoadSecret returns the component secret: from SecretFile when set (the
// file must exist and not be readable by everyone), else Secret.
func (c Component) LoadSecret() (string, error) {
	if c.SecretFile != "" {
		st, err := os.Stat(c.SecretFile)
		if err != nil {
			if c.Secret != "" && errors.Is(err, os.ErrNotExist) {
				return c.Secret, nil
			}
			return "", fmt.Errorf("component.secret_file: %w", err)
		}
		if st.Mode().Perm()&0o004 != 0 {
			return "", fmt.Errorf("component.secret_file %s is readable by every user (mode %v): chmod o-r it", c.SecretFile, st.Mode().Perm())
		}
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return "", fmt.Errorf("component.secret_file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("component.secret_file %s is empty", c.SecretFile)
		}
		return s, nil
	}
	if c.Secret == "" {
		return "", errors.New("no component secret: set component.secret_file")
	}
	return c.Secret, nil
}
