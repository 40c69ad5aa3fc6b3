package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func sipTransport(t string) (string, error) {
	switch strings.ToLower(t) {
	case "", "udp":
		return "UDP", nil
	case "tcp":
		return "TCP", nil
	}
	return "", fmt.Errorf("SIP transport %q: want udp or tcp", t)
}

func newUA(log *slog.Logger, name string) (*sipgo.UserAgent, error) {
	return sipgo.NewUA(
		sipgo.WithUserAgent(name),
		sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
	)
}

// SIPReceiverConfig describes a registered SIP user agent that answers
// MESSAGE requests.
type SIPReceiverConfig struct {
	// Users are the AORs sip:User@Domain registered with this receiver's
	// one contact (several users make several conversations).
	Users     []string
	Domain    string
	Registrar string // the proxy/registrar, IP literal and port
	Transport string // "udp" (default) or "tcp"
	Recorder  *Recorder
	Log       *slog.Logger
}

// SIPReceiver listens on 127.0.0.1 (UDP and TCP on the same port), answers
// every MESSAGE 200 at once and records its body.
type SIPReceiver struct {
	cfg       SIPReceiverConfig
	transport string
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	pc        net.PacketConn
	ln        net.Listener
	port      int
	messages  atomic.Int64
	wg        sync.WaitGroup
}

// StartSIPReceiver starts listening; call Register to be reachable through
// the registrar.
func StartSIPReceiver(cfg SIPReceiverConfig) (*SIPReceiver, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		return nil, errors.New("sip receiver: no recorder")
	}
	tp, err := sipTransport(cfg.Transport)
	if err != nil {
		return nil, err
	}
	r := &SIPReceiver{cfg: cfg, transport: tp}
	if err := r.listen(); err != nil {
		return nil, err
	}
	if len(cfg.Users) == 0 {
		r.closeListeners()
		return nil, errors.New("sip receiver: no user")
	}
	if r.ua, err = newUA(cfg.Log, cfg.Users[0]); err != nil {
		r.closeListeners()
		return nil, fmt.Errorf("sip receiver: %w", err)
	}
	if r.srv, err = sipgo.NewServer(r.ua, sipgo.WithServerLogger(cfg.Log)); err != nil {
		r.Close()
		return nil, fmt.Errorf("sip receiver: %w", err)
	}
	if r.client, err = sipgo.NewClient(r.ua, sipgo.WithClientLogger(cfg.Log), sipgo.WithClientHostname("127.0.0.1")); err != nil {
		r.Close()
		return nil, fmt.Errorf("sip receiver: %w", err)
	}
	r.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		r.messages.Add(1)
		cfg.Recorder.Deliver(req.Body())
		if err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)); err != nil {
			cfg.Log.Warn("sip receiver: respond", "err", err)
		}
	})
	r.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.srv.ServeUDP(r.pc) }()
	go func() { defer r.wg.Done(); r.srv.ServeTCP(r.ln) }()
	return r, nil
}

// listen binds UDP and TCP on one free port of 127.0.0.1.
func (r *SIPReceiver) listen() error {
	var lastErr error
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("sip receiver: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		r.pc, r.ln, r.port = pc, ln, port
		return nil
	}
	return fmt.Errorf("sip receiver: no port free for both UDP and TCP: %w", lastErr)
}

// Addr is the receiver's listening address.
func (r *SIPReceiver) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Messages counts MESSAGE requests answered.
func (r *SIPReceiver) Messages() int64 { return r.messages.Load() }

// Register binds every user's AOR to this receiver's contact at the
// registrar.
func (r *SIPReceiver) Register(ctx context.Context, expires time.Duration) error {
	for _, u := range r.cfg.Users {
		if err := r.register(ctx, u, expires); err != nil {
			return err
		}
	}
	return nil
}

func (r *SIPReceiver) register(ctx context.Context, user string, expires time.Duration) error {
	aor := sip.Uri{Scheme: "sip", User: user, Host: r.cfg.Domain}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: r.cfg.Domain})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: r.port}}
	if r.transport == "TCP" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", "tcp")
	}
	req.AppendHeader(contact)
	exp := sip.ExpiresHeader(uint32(expires / time.Second))
	req.AppendHeader(&exp)
	req.SetDestination(r.cfg.Registrar)
	req.SetTransport(r.transport)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := r.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("REGISTER %s at %s: %w", aor.String(), r.cfg.Registrar, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("REGISTER %s at %s: %d %s", aor.String(), r.cfg.Registrar, res.StatusCode, res.Reason)
	}
	return nil
}

func (r *SIPReceiver) closeListeners() {
	if r.pc != nil {
		r.pc.Close()
	}
	if r.ln != nil {
		r.ln.Close()
	}
}

// Close stops listening.
func (r *SIPReceiver) Close() error {
	r.closeListeners()
	if r.ua != nil {
		r.ua.Close()
	}
	r.wg.Wait()
	return nil
}

// SIPSenderConfig describes a MESSAGE sender.
type SIPSenderConfig struct {
	// From and To are SIP URIs, e.g. "sip:dave@sip.test",
	// "sip:alice@xmpp.test". Message seq goes from From[seq % len(From)]
	// to To[seq % len(To)]: several make several conversations.
	From, To    []string
	Proxy       string // every request goes here: IP literal and port
	Transport   string // "udp" (default) or "tcp"
	MaxInFlight int    // transactions in flight at most; default 256
	Timeout     time.Duration
	Recorder    *Recorder
	Log         *slog.Logger
}

// SIPSender sends MESSAGE requests (text/plain) through a proxy with a
// bounded number of transactions in flight. A final response other than
// 2xx, or none, is recorded as a failure of that message.
type SIPSender struct {
	cfg       SIPSenderConfig
	transport string
	from, to  []sip.Uri
	ua        *sipgo.UserAgent
	client    *sipgo.Client
	sem       chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	ok, failed atomic.Int64
}

// NewSIPSender prepares a sender.
func NewSIPSender(cfg SIPSenderConfig) (*SIPSender, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		return nil, errors.New("sip sender: no recorder")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tp, err := sipTransport(cfg.Transport)
	if err != nil {
		return nil, err
	}
	s := &SIPSender{cfg: cfg, transport: tp, sem: make(chan struct{}, cfg.MaxInFlight)}
	if s.from, err = parseURIs("From", cfg.From); err != nil {
		return nil, err
	}
	if s.to, err = parseURIs("To", cfg.To); err != nil {
		return nil, err
	}
	if s.ua, err = newUA(cfg.Log, s.from[0].User); err != nil {
		return nil, fmt.Errorf("sip sender: %w", err)
	}
	if s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientLogger(cfg.Log), sipgo.WithClientHostname("127.0.0.1")); err != nil {
		s.ua.Close()
		return nil, fmt.Errorf("sip sender: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func parseURIs(what string, in []string) ([]sip.Uri, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("sip sender: no %s", what)
	}
	out := make([]sip.Uri, len(in))
	for i, u := range in {
		if err := sip.ParseUri(u, &out[i]); err != nil {
			return nil, fmt.Errorf("sip sender: %s %q: %w", what, u, err)
		}
	}
	return out, nil
}

// OK and Failed count finished transactions.
func (s *SIPSender) OK() int64     { return s.ok.Load() }
func (s *SIPSender) Failed() int64 { return s.failed.Load() }

// Send starts one MESSAGE transaction; it blocks while MaxInFlight
// transactions are outstanding.
func (s *SIPSender) Send(tag uint32, seq uint64, body []byte) error {
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	to := s.to[seq%uint64(len(s.to))]
	req := sip.NewRequest(sip.MESSAGE, to)
	from := &sip.FromHeader{Address: s.from[seq%uint64(len(s.from))], Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	ct := sip.ContentTypeHeader("text/plain")
	req.AppendHeader(&ct)
	req.SetBody(append([]byte(nil), body...))
	req.SetDestination(s.cfg.Proxy)
	req.SetTransport(s.transport)
	s.wg.Add(1)
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		defer cancel()
		res, err := s.client.Do(ctx, req)
		switch {
		case err != nil:
			s.failed.Add(1)
			s.cfg.Recorder.Fail(tag, seq, "sip "+shortErr(err))
		case res.StatusCode >= 300:
			s.failed.Add(1)
			s.cfg.Recorder.Fail(tag, seq, fmt.Sprintf("sip %d %s", res.StatusCode, res.Reason))
		default:
			s.ok.Add(1)
		}
	}()
	return nil
}

func shortErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return err.Error()
}

// Flush does nothing: every request is written when sent.
func (s *SIPSender) Flush() error { return nil }

// Close waits (up to wait) for transactions in flight, then stops.
func (s *SIPSender) Close(wait time.Duration) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
	s.cancel()
	<-done
	return s.ua.Close()
}
