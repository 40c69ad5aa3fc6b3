// Package lyncemu is a Lync / Skype for Business peer for Parley's tests:
// one federated SIP domain (an Access Edge, a Front End and its users,
// collapsed into one sipgo user agent) that speaks IM exactly as
// shared/reference/lync-dialect.md §1.5 and §2 describe. It listens on
// TLS (mutual TLS, as a federation link is), sends everything to one static
// next hop (Kamailio's TLS port), and records what it receives as Events
// that tests Wait for. Users open IM sessions with User.Chat.
//
// The Edge's part: it adds ms-edge-proxy-message-trust to what it passes
// in (and flags a peer that sent one), Record-Routes its dialogs with
// ms-fe / ms-route-sig / ms-key-info entries and checks that in-dialog
// requests echo them verbatim, and adds Microsoft-style Vias. Each
// departure from a real deployment is written down where it is made.
//
// It knows nothing of Parley's packages: it drives Parley from outside,
// as a real Lync deployment would. Every address is an IP literal.
package lyncemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Options configure an emulated Lync domain.
type Options struct {
	// Domain is the SIP domain served (default "lync.test").
	Domain string
	// Users are the local users (default "dave", "erin").
	Users []string
	// ListenAddr is the TLS listen address "ip:port" (default
	// "127.0.0.1:0": a free port).
	ListenAddr string
	// TLS is the certificate the Edge presents (as server and as client)
	// and the CA it trusts (RootCAs, ClientCAs). Required. Set ClientAuth
	// to tls.RequireAndVerifyClientCert for mutual TLS (LoadTLS does).
	TLS *tls.Config
	// PlainAddr, when set ("127.0.0.1:0" for a free port), also listens
	// on UDP and TCP there, for plain SIP peers.
	PlainAddr string
	// Proxy is the static next hop "ip:port" for everything the emulator
	// sends: the partner's federation proxy (Kamailio's TLS port). It can
	// be set later with SetProxy. Lync sends in-dialog requests to a fixed
	// destination too when Record-Route holds IP literals (§1.8).
	Proxy string
	// ProxyTransport is "tls" (default), "tcp" or "udp".
	ProxyTransport string
	// EdgeFQDN names the Access Edge (default "sip.<Domain>"), FrontEndFQDN
	// the Front End (default "fe01.<Domain>"): they appear in ms-fe and
	// ms-ep-fqdn.
	EdgeFQDN, FrontEndFQDN string
	// QuotedViaParams quotes the Front End Via's ms-internal-info value, as
	// the captures show (lync-dialect.md §1.5). Off by default: sipgo
	// v1.7.2 (the emulator's and Parley's SIP stack) mangles quoted Via
	// parameters when it parses them, and Kamailio then refuses the answer
	// that echoes the mangled Via, so no sipgo peer survives it yet.
	QuotedViaParams bool
	// UserAgent of the emulated clients (default DefaultUserAgent).
	UserAgent string
	// Behaviour is the initial behaviour; see SetBehaviour.
	Behaviour Behaviour
	// Logger for the emulator and sipgo (default slog.Default()).
	Logger *slog.Logger
}

// Behaviour switches the emulator's answers. The zero value is a default
// SfB deployment.
type Behaviour struct {
	// AcceptPager answers pager-mode MESSAGE (outside a dialog) with 200.
	// By default it is refused with PagerRejectCode: Lync chats only in
	// sessions (§2.6).
	AcceptPager bool
	// PagerRejectCode is the answer to pager-mode MESSAGE (default 488
	// Not Acceptable Here). The doc leaves the real code UNVERIFIED and
	// suggests 403/488/415; 488 is the emulator's choice.
	PagerRejectCode int
	// NoTextFormat leaves Supported: ms-text-format out of the 200 to an
	// IM INVITE: the embedded first message is then not delivered, and
	// the caller must send it again in the session (§2.1).
	NoTextFormat bool
	// ConfInviteCode answers an INVITE with an ms-conf-invite body
	// (default 488, the doc's phase-1 answer, §2.5; 2xx accepts it).
	ConfInviteCode int
	// PolicyWord: a message containing it (case-insensitive) is refused
	// with 606 and Warning: 309 (§2.2; an IM filter on the Lync side).
	PolicyWord string
	// NoReinvite: Chat.Send does not re-open the session after a
	// 408/480/481 answer; Lync does (BYE, then a new INVITE, §7 item 8).
	NoReinvite bool
}

func (b Behaviour) withDefaults() Behaviour {
	if b.PagerRejectCode == 0 {
		b.PagerRejectCode = 488
	}
	if b.ConfInviteCode == 0 {
		b.ConfInviteCode = 488
	}
	return b
}

// Emulator is a running emulated Lync domain.
type Emulator struct {
	opts     Options
	log      *slog.Logger
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	tlsLn    net.Listener
	udp      net.PacketConn
	tcp      net.Listener
	ip       net.IP
	port     int
	plainIP  net.IP
	plain    int
	users    map[string]*User
	edge     edge
	serveWG  sync.WaitGroup
	closeMu  sync.Mutex
	isClosed bool

	mu         sync.Mutex
	proxy      string
	behaviour  Behaviour
	dialogs    map[string]*dialog // by dialog id
	ended      map[string]endedDialog
	events     []Event
	taken      []bool
	notify     chan struct{}
	violations []string
}

// New starts an emulator. Close it when done.
func New(ctx context.Context, o Options) (*Emulator, error) {
	if o.Domain == "" {
		o.Domain = "lync.test"
	}
	o.Domain = strings.ToLower(o.Domain)
	if len(o.Users) == 0 {
		o.Users = []string{"dave", "erin"}
	}
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	if o.ProxyTransport == "" {
		o.ProxyTransport = "tls"
	}
	o.ProxyTransport = strings.ToLower(o.ProxyTransport)
	switch o.ProxyTransport {
	case "tls", "tcp", "udp":
	default:
		return nil, fmt.Errorf("lyncemu: ProxyTransport %q: want tls, tcp or udp", o.ProxyTransport)
	}
	if o.ProxyTransport != "tls" && o.PlainAddr == "" {
		return nil, fmt.Errorf("lyncemu: ProxyTransport %s needs PlainAddr", o.ProxyTransport)
	}
	if o.TLS == nil {
		return nil, errors.New("lyncemu: Options.TLS is required (see LoadTLS)")
	}
	if o.Proxy != "" {
		if err := checkIPAddr(o.Proxy); err != nil {
			return nil, fmt.Errorf("lyncemu: proxy: %w", err)
		}
	}
	if o.EdgeFQDN == "" {
		o.EdgeFQDN = "sip." + o.Domain
	}
	if o.FrontEndFQDN == "" {
		o.FrontEndFQDN = "fe01." + o.Domain
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	e := &Emulator{
		opts:      o,
		log:       o.Logger.With("lyncemu", o.Domain),
		users:     map[string]*User{},
		proxy:     o.Proxy,
		behaviour: o.Behaviour.withDefaults(),
		dialogs:   map[string]*dialog{},
		ended:     map[string]endedDialog{},
		notify:    make(chan struct{}),
	}
	for _, name := range o.Users {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-", r)
		}) {
			return nil, fmt.Errorf("lyncemu: bad user name %q", name)
		}
		e.users[strings.ToLower(name)] = newUser(e, name)
	}
	if err := e.listen(ctx); err != nil {
		return nil, err
	}
	e.edge = newEdge(o.EdgeFQDN, o.FrontEndFQDN, e.ip.String(), e.port, o.QuotedViaParams)
	if err := e.startSIP(); err != nil {
		e.closeListeners()
		return nil, err
	}
	e.log.Debug("lync emulator listening", "tls", e.Addr(), "plain", e.PlainAddr())
	return e, nil
}

// Start is New for tests: it fails t on error and closes the emulator
// when t ends.
func Start(t testing.TB, o Options) *Emulator {
	t.Helper()
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// LoadTLS builds the emulator's TLS configuration from PEM files:
// certFile/keyFile are presented as server and as client; caFile, when
// set, is the only trust anchor and client certificates are required
// (mutual TLS, as on a federation link, §1.1).
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("lyncemu: TLS key pair: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("lyncemu: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("lyncemu: CA %s: no certificate", caFile)
		}
		c.RootCAs, c.ClientCAs = pool, pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func (e *Emulator) listen(ctx context.Context) error {
	host, _, err := net.SplitHostPort(e.opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("lyncemu: listen addr %q: %w", e.opts.ListenAddr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("lyncemu: listen addr %q: host must be an IP literal", e.opts.ListenAddr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("lyncemu: listen tls: %w", err)
	}
	conf := e.opts.TLS.Clone()
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	e.tlsLn = tls.NewListener(ln, conf)
	a := ln.Addr().(*net.TCPAddr)
	e.ip, e.port = a.IP, a.Port
	if e.opts.PlainAddr != "" {
		if err := checkIPAddr(e.opts.PlainAddr); err != nil {
			e.closeListeners()
			return fmt.Errorf("lyncemu: plain addr: %w", err)
		}
		if e.udp, e.tcp, err = listenBoth(ctx, e.opts.PlainAddr); err != nil {
			e.closeListeners()
			return fmt.Errorf("lyncemu: %w", err)
		}
		ua := e.udp.LocalAddr().(*net.UDPAddr)
		e.plainIP, e.plain = ua.IP, ua.Port
	}
	return nil
}

func (e *Emulator) startSIP() error {
	l := e.opts.Logger
	var err error
	e.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(e.opts.UserAgent),
		sipgo.WithUserAgentHostname(e.opts.Domain),
		sipgo.WithUserAgenTLSConfig(e.opts.TLS),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(l)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(l),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				e.log.Debug("response without transaction (retransmission)", "status", r.StatusCode, "call_id", callID(r))
			})),
	)
	if err != nil {
		return fmt.Errorf("lyncemu: new UA: %w", err)
	}
	if e.srv, err = sipgo.NewServer(e.ua, sipgo.WithServerLogger(l)); err != nil {
		e.ua.Close()
		return fmt.Errorf("lyncemu: new server: %w", err)
	}
	if e.client, err = sipgo.NewClient(e.ua, sipgo.WithClientLogger(l), sipgo.WithClientHostname(e.ip.String())); err != nil {
		e.ua.Close()
		return fmt.Errorf("lyncemu: new client: %w", err)
	}
	e.srv.OnInvite(e.onInvite)
	e.srv.OnAck(e.onAck)
	e.srv.OnMessage(e.onMessage)
	e.srv.OnInfo(e.onInfo)
	e.srv.OnBye(e.onBye)
	e.srv.OnCancel(e.onCancel)
	e.srv.OnOptions(e.onOptions)
	e.serveWG.Add(1)
	go func() { defer e.serveWG.Done(); _ = e.srv.ServeTLS(e.tlsLn) }()
	if e.udp != nil {
		e.serveWG.Add(2)
		go func() { defer e.serveWG.Done(); _ = e.srv.ServeUDP(e.udp) }()
		go func() { defer e.serveWG.Done(); _ = e.srv.ServeTCP(e.tcp) }()
	}
	return nil
}

// Addr is the Edge's TLS address "ip:port" (what Kamailio's LyncDomains
// maps the domain to).
func (e *Emulator) Addr() string { return net.JoinHostPort(e.ip.String(), strconv.Itoa(e.port)) }

// PlainAddr is the UDP/TCP address ("" unless Options.PlainAddr).
func (e *Emulator) PlainAddr() string {
	if e.plainIP == nil {
		return ""
	}
	return net.JoinHostPort(e.plainIP.String(), strconv.Itoa(e.plain))
}

// Domain is the served domain.
func (e *Emulator) Domain() string { return e.opts.Domain }

// SetProxy sets the static next hop for everything the emulator sends.
func (e *Emulator) SetProxy(addr string) error {
	if err := checkIPAddr(addr); err != nil {
		return fmt.Errorf("lyncemu: proxy: %w", err)
	}
	e.mu.Lock()
	e.proxy = addr
	e.mu.Unlock()
	return nil
}

// SetBehaviour changes the behaviour for requests that arrive from now on.
func (e *Emulator) SetBehaviour(f func(*Behaviour)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.behaviour
	f(&b)
	e.behaviour = b.withDefaults()
}

func (e *Emulator) currentBehaviour() Behaviour {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.behaviour
}

// User returns the local user name (e.g. "dave"). For a name that is not
// configured it returns a User whose every operation fails.
func (e *Emulator) User(name string) *User {
	if u, ok := e.users[strings.ToLower(name)]; ok {
		return u
	}
	return &User{emu: e, name: name, unknown: true}
}

// Users are the configured user names.
func (e *Emulator) Users() []string { return append([]string(nil), e.opts.Users...) }

// record appends an event and wakes waiters.
func (e *Emulator) record(ev Event) {
	e.mu.Lock()
	ev.Seq = len(e.events) + 1
	e.events = append(e.events, ev)
	e.taken = append(e.taken, false)
	for _, v := range ev.Violations {
		e.violations = append(e.violations, fmt.Sprintf("%s %s (call %s): %s", ev.Method, ev.Type, ev.CallID, v))
	}
	close(e.notify)
	e.notify = make(chan struct{})
	e.mu.Unlock()
	e.log.Debug("event", "type", ev.Type, "user", ev.User, "peer", ev.Peer, "status", ev.Status, "call_id", ev.CallID, "violations", len(ev.Violations))
}

// violate records a rule the peer broke outside any event (e.g. in a
// response).
func (e *Emulator) violate(what string) {
	e.mu.Lock()
	e.violations = append(e.violations, what)
	e.mu.Unlock()
	e.log.Warn("dialect violation", "what", what)
}

// Violations are every dialect rule the peers broke so far, in order.
// A test of a well-behaved gateway expects none.
func (e *Emulator) Violations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.violations...)
}

// Events returns every event so far.
func (e *Emulator) Events() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.events...)
}

// Wait returns the oldest event that matches m (nil: any) and that no
// earlier Wait returned, waiting until ctx ends.
func (e *Emulator) Wait(ctx context.Context, m Matcher) (Event, error) {
	next := 0
	for {
		e.mu.Lock()
		for ; next < len(e.events); next++ {
			if !e.taken[next] && (m == nil || m.Match(e.events[next])) {
				e.taken[next] = true
				ev := e.events[next]
				e.mu.Unlock()
				return ev, nil
			}
		}
		ch, n := e.notify, len(e.events)
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("lyncemu %s: no matching event among %d received: %w", e.opts.Domain, n, ctx.Err())
		}
	}
}

// DropDialogs forgets every dialog without BYE: the peer's next in-dialog
// request gets 481 (as after a Front End restart).
func (e *Emulator) DropDialogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, d := range e.dialogs {
		d.closed = true
		delete(e.dialogs, id)
	}
}

// Close stops the emulator. Open dialogs are dropped without BYE.
func (e *Emulator) Close() error {
	e.closeMu.Lock()
	if e.isClosed {
		e.closeMu.Unlock()
		return nil
	}
	e.isClosed = true
	e.closeMu.Unlock()
	err := e.ua.Close()
	e.closeListeners()
	e.serveWG.Wait()
	if err != nil {
		return fmt.Errorf("lyncemu close: %w", err)
	}
	return nil
}

func (e *Emulator) closeListeners() {
	if e.tlsLn != nil {
		e.tlsLn.Close()
	}
	if e.tcp != nil {
		e.tcp.Close()
	}
	if e.udp != nil {
		e.udp.Close()
	}
}

// listenBoth binds UDP and TCP on the same port.
func listenBoth(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen addr %q: %w", addr, err)
	}
	var lc net.ListenConfig
	var lastErr error
	for i := 0; i < 50; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		p := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

func checkIPAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP literal (no DNS)", addr)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	return nil
}

func callID(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
