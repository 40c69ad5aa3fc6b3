// Package sipua is a real SIP user agent (on sipgo) for Parley's
// integration tests: it registers with Kamailio, sends MESSAGE requests and
// records the MESSAGE requests it receives, over UDP and TCP on one port.
//
// Every destination is an IP literal; sipgo is never left to resolve a
// Request-URI through DNS.
package sipua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Options configures a user agent.
type Options struct {
	// User and Domain form the AOR sip:User@Domain.
	User, Domain string
	// Proxy is the outbound proxy (Kamailio), "ip:port". Requests go there
	// unless a SendOption says otherwise.
	Proxy string
	// ListenAddr is the local "ip:port" for UDP and TCP (the same port for
	// both); port 0 picks one free for both. Default "127.0.0.1:0". Its IP
	// is also the source address of every request (e.g. 127.0.0.2 to send
	// from an untrusted loopback address).
	ListenAddr string
	// Transport is "udp" (default) or "tcp": for REGISTER (and the Contact)
	// and the default for SendMessage.
	Transport string
	// DisplayName for From (optional).
	DisplayName string
	// Logger for sipgo and the UA; default slog.Default().
	Logger *slog.Logger
}

// Message is a MESSAGE request the UA received.
type Message struct {
	From        string // From URI
	To          string // To URI
	RequestURI  string
	CallID      string
	ContentType string
	Body        string
	Transport   string // "udp" or "tcp": how it arrived
	Source      string // ip:port it came from
	Raw         string // the whole request as received (parsed and re-serialized)
	Request     *sip.Request
}

// Header returns the first value of the named header ("" if absent).
func (m Message) Header(name string) string {
	if h := m.Request.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// UA is a running user agent.
type UA struct {
	opts      Options
	log       *slog.Logger
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	udp       net.PacketConn
	tcp       net.Listener
	ip        net.IP
	port      int
	serveDone sync.WaitGroup

	mu          sync.Mutex
	msgs        []Message
	taken       []bool
	notify      chan struct{}
	answer      int
	answerDelay time.Duration
	closed      bool
}

// New starts a user agent listening on UDP and TCP. Close it when done.
func New(ctx context.Context, o Options) (*UA, error) {
	if o.User == "" || o.Domain == "" {
		return nil, errors.New("sipua: User and Domain are required")
	}
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	o.Transport = strings.ToLower(o.Transport)
	if o.Transport == "" {
		o.Transport = "udp"
	}
	if o.Transport != "udp" && o.Transport != "tcp" {
		return nil, fmt.Errorf("sipua: transport %q: want udp or tcp", o.Transport)
	}
	if o.Proxy != "" {
		if err := checkIPAddr(o.Proxy); err != nil {
			return nil, fmt.Errorf("sipua: proxy: %w", err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	u := &UA{opts: o, log: o.Logger.With("ua", o.User+"@"+o.Domain), notify: make(chan struct{}), answer: 200}
	var err error
	if u.udp, u.tcp, err = listenBoth(ctx, o.ListenAddr); err != nil {
		return nil, fmt.Errorf("sipua %s@%s: %w", o.User, o.Domain, err)
	}
	ua := u.udp.LocalAddr().(*net.UDPAddr)
	u.ip, u.port = ua.IP, ua.Port

	u.ua, err = sipgo.NewUA(sipgo.WithUserAgent(o.User), sipgo.WithUserAgentHostname(o.Domain))
	if err != nil {
		u.closeListeners()
		return nil, fmt.Errorf("sipua: new UA: %w", err)
	}
	u.srv, err = sipgo.NewServer(u.ua, sipgo.WithServerLogger(o.Logger))
	if err != nil {
		u.ua.Close()
		u.closeListeners()
		return nil, fmt.Errorf("sipua: new server: %w", err)
	}
	u.client, err = sipgo.NewClient(u.ua, sipgo.WithClientLogger(o.Logger), sipgo.WithClientHostname(u.ip.String()))
	if err != nil {
		u.ua.Close()
		u.closeListeners()
		return nil, fmt.Errorf("sipua: new client: %w", err)
	}
	u.srv.OnMessage(u.onMessage)
	u.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	u.serveDone.Add(2)
	go func() { defer u.serveDone.Done(); _ = u.srv.ServeUDP(u.udp) }()
	go func() { defer u.serveDone.Done(); _ = u.srv.ServeTCP(u.tcp) }()
	// ServeUDP registers the listener in sipgo's connection pool
	// asynchronously; requests sent from it before that would try to bind
	// the port a second time.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := u.ua.TransportLayer().GetConnection("udp", u.Addr()); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			u.Close()
			return nil, fmt.Errorf("sipua %s: UDP listener not ready", u.AOR())
		}
		time.Sleep(time.Millisecond)
	}
	u.log.Debug("sip UA listening", "addr", u.Addr())
	return u, nil
}

// Start is New for tests: it fails t on error and closes the UA when t ends.
func Start(t testing.TB, o Options) *UA {
	t.Helper()
	u, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// listenBoth binds UDP and TCP on the same port.
func listenBoth(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen addr %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, nil, fmt.Errorf("listen addr %q: host must be an IP literal", addr)
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

// Addr is the UA's listen address "ip:port" (UDP and TCP).
func (u *UA) Addr() string { return net.JoinHostPort(u.ip.String(), strconv.Itoa(u.port)) }

// AOR is "sip:user@domain".
func (u *UA) AOR() string { return "sip:" + u.opts.User + "@" + u.opts.Domain }

// Contact is the UA's contact URI for its transport.
func (u *UA) Contact() string {
	c := u.contactURI(u.opts.Transport)
	return c.String()
}

func (u *UA) contactURI(transport string) sip.Uri {
	c := sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.ip.String(), Port: u.port}
	if transport == "tcp" {
		c.UriParams = sip.NewParams()
		c.UriParams.Add("transport", "tcp")
	}
	return c
}

// SetAnswer sets the status code the UA answers MESSAGE requests with
// (default 200). 0 means: do not answer at all.
func (u *UA) SetAnswer(code int) {
	u.mu.Lock()
	u.answer = code
	u.mu.Unlock()
}

// SetAnswerDelay delays every answer to MESSAGE by d.
func (u *UA) SetAnswerDelay(d time.Duration) {
	u.mu.Lock()
	u.answerDelay = d
	u.mu.Unlock()
}

func (u *UA) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	m := Message{
		RequestURI: (&req.Recipient).String(),
		Body:       string(req.Body()),
		Transport:  strings.ToLower(req.Transport()),
		Source:     req.Source(),
		Raw:        req.String(),
		Request:    req,
	}
	if h := req.From(); h != nil {
		m.From = (&h.Address).String()
	}
	if h := req.To(); h != nil {
		m.To = (&h.Address).String()
	}
	if h := req.CallID(); h != nil {
		m.CallID = h.Value()
	}
	if h := req.ContentType(); h != nil {
		m.ContentType = h.Value()
	}
	u.mu.Lock()
	u.msgs = append(u.msgs, m)
	u.taken = append(u.taken, false)
	code, delay := u.answer, u.answerDelay
	close(u.notify)
	u.notify = make(chan struct{})
	u.mu.Unlock()
	u.log.Debug("MESSAGE received", "from", m.From, "transport", m.Transport, "call_id", m.CallID)
	if code == 0 {
		return
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason(code), nil)); err != nil {
		u.log.Warn("sipua: answer MESSAGE", "err", err)
	}
}

func reason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Status " + strconv.Itoa(code)
}

// Wait returns the oldest received MESSAGE that matches match (nil: any)
// and was not returned by an earlier Wait, waiting until ctx ends.
func (u *UA) Wait(ctx context.Context, match func(Message) bool) (Message, error) {
	next := 0
	for {
		u.mu.Lock()
		for ; next < len(u.msgs); next++ {
			if !u.taken[next] && (match == nil || match(u.msgs[next])) {
				u.taken[next] = true
				m := u.msgs[next]
				u.mu.Unlock()
				return m, nil
			}
		}
		ch, n := u.notify, len(u.msgs)
		u.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("sipua %s: no matching MESSAGE among %d received: %w", u.AOR(), n, ctx.Err())
		}
	}
}

// Messages returns every MESSAGE received so far.
func (u *UA) Messages() []Message {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Message(nil), u.msgs...)
}

// Count is the number of MESSAGE requests received so far.
func (u *UA) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.msgs)
}

// SendOption adjusts one request.
type SendOption func(*sendConfig)

type sendConfig struct {
	transport string
	dest      string
	callID    string
	from      string
	headers   []sip.Header
}

// WithTransport sends this request over "udp" or "tcp".
func WithTransport(tr string) SendOption {
	return func(c *sendConfig) { c.transport = strings.ToLower(tr) }
}

// WithDestination sends this request straight to addr ("ip:port") instead
// of the proxy (e.g. directly to Parley).
func WithDestination(addr string) SendOption { return func(c *sendConfig) { c.dest = addr } }

// WithCallID sets the Call-ID.
func WithCallID(id string) SendOption { return func(c *sendConfig) { c.callID = id } }

// WithFrom overrides the From URI (default the UA's AOR).
func WithFrom(uri string) SendOption { return func(c *sendConfig) { c.from = uri } }

// WithHeader adds a header.
func WithHeader(name, value string) SendOption {
	return func(c *sendConfig) { c.headers = append(c.headers, sip.NewHeader(name, value)) }
}

// Register registers the UA's contact with the proxy (Expires 300).
func (u *UA) Register(ctx context.Context) error { return u.register(ctx, 300) }

// Unregister removes the registration (Expires 0).
func (u *UA) Unregister(ctx context.Context) error { return u.register(ctx, 0) }

func (u *UA) register(ctx context.Context, expires uint32) error {
	if u.opts.Proxy == "" {
		return errors.New("sipua: Register needs Options.Proxy")
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: u.opts.Domain})
	aor := sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.opts.Domain}
	to := &sip.ToHeader{Address: aor}
	req.AppendHeader(to)
	req.AppendHeader(&sip.ContactHeader{Address: u.contactURI(u.opts.Transport)})
	e := sip.ExpiresHeader(expires)
	req.AppendHeader(&e)
	res, err := u.do(ctx, req, &sendConfig{transport: u.opts.Transport})
	if err != nil {
		return fmt.Errorf("sipua %s: REGISTER: %w", u.AOR(), err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("sipua %s: REGISTER: %d %s", u.AOR(), res.StatusCode, res.Reason)
	}
	return nil
}

// SendMessage sends a MESSAGE to toURI (e.g. "sip:bob@xmpp.test") and
// returns the final response's status code and the response.
func (u *UA) SendMessage(ctx context.Context, toURI, contentType, body string, opts ...SendOption) (int, *sip.Response, error) {
	var target sip.Uri
	if err := sip.ParseUri(toURI, &target); err != nil {
		return 0, nil, fmt.Errorf("sipua: to URI %q: %w", toURI, err)
	}
	c := &sendConfig{transport: u.opts.Transport}
	for _, o := range opts {
		o(c)
	}
	req := sip.NewRequest(sip.MESSAGE, target)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host}})
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody([]byte(body))
	res, err := u.do(ctx, req, c)
	if err != nil {
		return 0, nil, fmt.Errorf("sipua %s: MESSAGE to %s: %w", u.AOR(), toURI, err)
	}
	return res.StatusCode, res, nil
}

// do fills in the headers sipgo would otherwise derive from DNS-able
// names, sets an explicit IP destination and waits for the final response.
func (u *UA) do(ctx context.Context, req *sip.Request, c *sendConfig) (*sip.Response, error) {
	if c.transport != "udp" && c.transport != "tcp" {
		return nil, fmt.Errorf("transport %q: want udp or tcp", c.transport)
	}
	dest := c.dest
	if dest == "" {
		dest = u.opts.Proxy
	}
	if dest == "" {
		return nil, errors.New("no destination: set Options.Proxy or WithDestination")
	}
	if err := checkIPAddr(dest); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	req.SetTransport(strings.ToUpper(c.transport))
	req.SetDestination(dest)

	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0",
		Transport: strings.ToUpper(c.transport),
		Host:      u.ip.String(), Port: u.port,
		Params: sip.NewParams(),
	}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	req.PrependHeader(via)

	from := sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.opts.Domain}
	if c.from != "" {
		if err := sip.ParseUri(c.from, &from); err != nil {
			return nil, fmt.Errorf("from URI %q: %w", c.from, err)
		}
	}
	fh := &sip.FromHeader{DisplayName: u.opts.DisplayName, Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fh)
	if c.callID != "" {
		cid := sip.CallIDHeader(c.callID)
		req.AppendHeader(&cid)
	}
	if req.Contact() == nil {
		req.AppendHeader(&sip.ContactHeader{Address: u.contactURI(c.transport)})
	}
	for _, h := range c.headers {
		req.AppendHeader(h)
	}
	// Send from our listening address: UDP from the listener socket (so
	// replies and the source port match Via), TCP from an ephemeral port
	// on the listen IP.
	if c.transport == "udp" {
		req.Laddr = sip.Addr{IP: u.ip, Port: u.port}
	} else {
		req.Laddr = sip.Addr{IP: u.ip}
	}
	return u.client.Do(ctx, req)
}

// Close stops the UA.
func (u *UA) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	err := u.ua.Close()
	u.closeListeners()
	u.serveDone.Wait()
	if err != nil {
		return fmt.Errorf("sipua close: %w", err)
	}
	return nil
}

func (u *UA) closeListeners() {
	if u.udp != nil {
		u.udp.Close()
	}
	if u.tcp != nil {
		u.tcp.Close()
	}
}
