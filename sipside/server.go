package sipside

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// Deps are sipside's collaborators.
type Deps struct {
	Bus    store.Bus
	Store  store.Store
	Mapper *address.Mapper
	// Log defaults to discarding.
	Log *slog.Logger
	// Metrics defaults to a private registry nobody scrapes.
	Metrics prometheus.Registerer
	// Instance names this process as a bus consumer and names its reply
	// topic; it must be stable across restarts.
	Instance string
}

// Server is the SIP side of Parley. New builds it; Run serves until its
// context ends.
type Server struct {
	st       settings
	bus      store.Bus
	records  records
	mapper   *address.Mapper
	log      *slog.Logger
	metrics  *metrics
	instance string

	ua     *sipgo.UserAgent
	server *sipgo.Server
	client *sipgo.Client

	waiters  *waiters
	trustLog *rateLimiter

	// Retry policy and bounds; package tests shorten them.
	maxAttempts         int
	retryBase, retryMax time.Duration
	sendTimeout         time.Duration

	// Set by Run before anything is served.
	runCtx   context.Context
	udpLaddr sip.Addr
	ls       atomic.Pointer[listeners]

	started atomic.Bool
	ready   atomic.Bool

	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup
}

// New validates cfg and deps and builds the Server. It opens no socket.
func New(cfg config.SIP, deps Deps) (*Server, error) {
	st, err := parseSettings(cfg)
	if err != nil {
		return nil, fmt.Errorf("sipside: %w", err)
	}
	switch {
	case deps.Bus == nil:
		return nil, errors.New("sipside: no Bus")
	case deps.Store == nil:
		return nil, errors.New("sipside: no Store")
	case deps.Mapper == nil:
		return nil, errors.New("sipside: no address Mapper")
	case deps.Instance == "":
		return nil, errors.New("sipside: no Instance name")
	}
	for _, d := range append(cfg.Domains[:len(cfg.Domains):len(cfg.Domains)], cfg.GatewayDomain) {
		if d != "" && !deps.Mapper.ServesXMPPDomain(d) {
			return nil, fmt.Errorf("sipside: sip.domains: %q is not served by the address mapper (built from another configuration?)", d)
		}
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("role", "sip")
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}

	s := &Server{
		st:          st,
		bus:         deps.Bus,
		records:     records{st: deps.Store},
		mapper:      deps.Mapper,
		log:         log,
		metrics:     m,
		instance:    deps.Instance,
		waiters:     newWaiters(),
		trustLog:    newRateLimiter(time.Minute, 1024),
		maxAttempts: defaultMaxAttempts,
		retryBase:   defaultRetryBase,
		retryMax:    defaultRetryMax,
		// Timer F ends a non-INVITE transaction; the margin covers a TCP
		// connect that hangs.
		sendTimeout: sip.Timer_F + 5*time.Second,
	}
	if err := s.newUA(); err != nil {
		return nil, err
	}
	return s, nil
}

// newUA builds the sipgo user agent, its server (UAS) and client (UAC).
func (s *Server) newUA() error {
	sipLog := s.log.With("subsystem", "sipgo")
	parser := sip.NewParser()
	// Room for headers above the body limit, so that a body somewhat over
	// it still parses and gets its 413 instead of being dropped.
	parser.MaxMessageLength = max(sip.ParseMaxMessageLength, s.st.maxMessageBytes+64<<10)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("Parley"),
		sipgo.WithUserAgentParser(parser),
		sipgo.WithUserAgenTLSConfig(s.st.tlsConfig),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				sipLog.Debug("response matching no transaction (a retransmission)", "status", r.StatusCode)
			}),
		),
	)
	if err != nil {
		return fmt.Errorf("sipside: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		_ = ua.Close()
		return fmt.Errorf("sipside: sip server: %w", err)
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog))
	if err != nil {
		_ = ua.Close()
		return fmt.Errorf("sipside: sip client: %w", err)
	}
	s.routes(srv)
	s.ua, s.server, s.client = ua, srv, cl
	return nil
}

// Ready reports whether the listeners are bound, the bus consumers run and
// the Server is not draining.
func (s *Server) Ready() bool { return s.ready.Load() }

// Addr returns the bound address of one listener ("udp", "tcp" or "tls"),
// or nil before Run has bound it or when that transport is not configured.
// Useful when a listen address has port 0.
func (s *Server) Addr(network string) net.Addr {
	if l := s.ls.Load(); l != nil {
		return l.addr(network)
	}
	return nil
}

// Run listens and serves until ctx ends, then drains: new requests are
// answered 503, no new bus event is taken, the deliveries and inbound
// MESSAGEs in flight finish, and everything is closed. It returns nil after
// a clean drain, or the error that stopped it (a listener that could not be
// bound or failed).
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("sipside: Run called twice")
	}
	defer s.ua.Close()
	ls, err := s.listen()
	if err != nil {
		return err
	}
	defer ls.close()

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	s.runCtx = runCtx
	s.udpLaddr = ls.udpLocal()
	s.ls.Store(ls)

	serveErr := make(chan error, 3)
	ls.serve(s.server, serveErr)
	if err := s.awaitUDPListener(); err != nil {
		return err
	}

	outCtx, stopOut := context.WithCancel(runCtx)
	replyCtx, stopReplies := context.WithCancel(runCtx)
	outDone, repliesDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(repliesDone)
		s.consume(replyCtx, replyTopic(s.instance), replyGroup, s.onResult)
	}()
	go func() {
		defer close(outDone)
		s.consume(outCtx, model.TopicToSIP, outboundGroup, s.outboundHandler())
	}()

	s.ready.Store(true)
	s.log.Info("SIP side ready", "udp", addrString(ls.addr("udp")), "tcp", addrString(ls.addr("tcp")),
		"tls", addrString(ls.addr("tls")), "outbound_proxy", s.st.outboundProxy.String())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("sipside: %w", err)
		s.log.Error("SIP listener failed; draining", "err", err)
	}

	s.ready.Store(false)
	s.log.Info("SIP side draining")
	s.mu.Lock()
	s.draining = true // new requests: 503
	s.mu.Unlock()
	stopOut() // no new bus events; the delivery in flight finishes
	<-outDone
	s.inflight.Wait() // inbound MESSAGEs in flight get their answer
	stopReplies()
	<-repliesDone
	s.log.Info("SIP side stopped")
	return runErr
}

// awaitUDPListener waits until sipgo has put the UDP listener in its
// connection pool (ServeUDP does so asynchronously): until then a request
// sent from the listener's address would make sipgo bind that port again.
func (s *Server) awaitUDPListener() error {
	if s.udpLaddr.IP == nil {
		return nil
	}
	addr := s.udpLaddr.String()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, err := s.ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sipside: UDP listener %s not serving", addr)
		}
	}
}

// begin admits a request unless draining; the caller must call
// s.inflight.Done when it returns true.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight.Add(1)
	return true
}

// dedupTTL is how long a handled TopicToSIP event is remembered; longer
// than an event can stay pending.
const dedupTTL = 24 * time.Hour

// outboundHandler is the TopicToSIP handler: an event already handled (its
// acknowledgement lost, or published twice) is not sent again.
func (s *Server) outboundHandler() store.Handler {
	return store.Deduplicate(s.records.st, outboundGroup, dedupTTL, s.onToSIP)
}

// consume runs one bus consumer until ctx ends, restarting it with backoff
// if the bus drops it.
func (s *Server) consume(ctx context.Context, topic, group string, h store.Handler) {
	backoff := 100 * time.Millisecond
	for {
		err := s.bus.Consume(ctx, topic, group, s.instance, h)
		if ctx.Err() != nil {
			return
		}
		s.log.Error("bus consumer stopped; restarting", "topic", topic, "group", group, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
