// Package config is Parley's TOML configuration: the file format, its
// defaults (a one-box install needs no file at all) and validation that
// names the key and line of every problem.
//
// It must not know how the roles use their settings.
package config

import "time"

// Config is the whole parley.toml.
type Config struct {
	Log       Log       `toml:"log"`
	Store     Store     `toml:"store"`
	Component Component `toml:"component"`
	SIP       SIP       `toml:"sip"`
	Metrics   Metrics   `toml:"metrics"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Store selects where shared state and the event bus live.
type Store struct {
	Backend string `toml:"backend"` // "memory" (one process) or "redis"
	// RedisURL is a redis:// URL; a password in it is never logged.
	RedisURL string `toml:"redis_url"`
	// Instance names this process as a consumer, so a restarted process
	// picks up what it left unacknowledged. Default: role@hostname.
	Instance string `toml:"instance"`
}

// Component is the XEP-0114 external component towards Prosody/ejabberd.
type Component struct {
	// Server is the XMPP server's component port (host:port).
	Server string `toml:"server"`
	// Secret is the shared secret; SecretFile is preferred (and wins).
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	// Domains are the XMPP domains the component serves, each standing for
	// the SIP domain of the same name (transparent domains, RFC 7247).
	Domains []string `toml:"domains"`
	// GatewayDomain optionally serves every other SIP domain as
	// user\40sipdomain@GatewayDomain (XEP-0106).
	GatewayDomain string `toml:"gateway_domain"`
	// PingInterval is the XEP-0199 keepalive period towards the server.
	PingInterval Duration `toml:"ping_interval"`
	// MaxStanzaBytes bounds one inbound stanza.
	MaxStanzaBytes int `toml:"max_stanza_bytes"`
}

// SIP is the SIP side behind the customer's proxy.
type SIP struct {
	// Listen addresses; empty disables a transport.
	ListenUDP string `toml:"listen_udp"`
	ListenTCP string `toml:"listen_tcp"`
	ListenTLS string `toml:"listen_tls"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	// Domains are the SIP domains served, each standing for the XMPP domain
	// of the same name (transparent domains).
	Domains []string `toml:"domains"`
	// GatewayDomain optionally serves every other XMPP domain as
	// sip:user%40xmppdomain@GatewayDomain.
	GatewayDomain string `toml:"gateway_domain"`
	// OutboundProxy (host:port, IP literal) receives every request Parley sends.
	OutboundProxy string `toml:"outbound_proxy"`
	// TrustedProxies are the IP addresses or CIDRs allowed to send requests.
	TrustedProxies []string `toml:"trusted_proxies"`
	// DeliveryWait bounds how long an inbound MESSAGE waits for the XMPP
	// side's verdict before it is answered 202 Accepted.
	DeliveryWait Duration `toml:"delivery_wait"`
	// MaxMessageBytes bounds an inbound MESSAGE body (413 above it).
	MaxMessageBytes int `toml:"max_message_bytes"`
}

// Metrics is the Prometheus /metrics and /healthz listener.
type Metrics struct {
	Listen string `toml:"listen"` // empty disables it
}

// Duration is a time.Duration written as "30s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Default is the configuration of a one-box install: Prosody's component
// port and Kamailio on this host, state in memory.
func Default() Config {
	return Config{
		Log:   Log{Level: "info", Format: "text"},
		Store: Store{Backend: "memory", RedisURL: "redis://127.0.0.1:6379/0"},
		Component: Component{
			Server:         "127.0.0.1:5347",
			SecretFile:     "/etc/parley/component.secret",
			Domains:        []string{"sip.test", "lync.test"},
			PingInterval:   Duration{60 * time.Second},
			MaxStanzaBytes: 256 << 10,
		},
		SIP: SIP{
			ListenUDP:       "127.0.0.1:5080",
			ListenTCP:       "127.0.0.1:5080",
			Domains:         []string{"xmpp.test"},
			OutboundProxy:   "127.0.0.1:5060",
			TrustedProxies:  []string{"127.0.0.1"},
			DeliveryWait:    Duration{2 * time.Second},
			MaxMessageBytes: 64 << 10,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9090"},
	}
}
