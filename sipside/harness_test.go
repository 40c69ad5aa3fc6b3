package sipside

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleygw/parley/integration/sipua"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/memstore"
)

// Tests run real SIP over loopback: sipside on 127.0.0.1 ephemeral ports, a
// sipua user agent standing in for the proxy (it receives what sipside
// sends and sends requests to sipside), and memstore as the bus. A goroutine
// consuming model.TopicToXMPP stands in for the component.

func TestMain(m *testing.M) {
	// T1 = 50 ms makes Timer F (64·T1) 3.2 s, so that "no answer" cases
	// end within a test. Set before anything runs: sipgo reads these
	// globals from its goroutines.
	sip.SetTimers(50*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	// sipgo's own package-level logger (connection bookkeeping); the
	// parley binary sets it once at start-up too.
	sip.SetDefaultLogger(testLog())
	os.Exit(m.Run())
}

const instance = "test-1"

// testLog discards unless PARLEY_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type env struct {
	t      *testing.T
	srv    *Server
	bus    *memstore.Backend
	mapper *address.Mapper
	peer   *sipua.UA // the proxy
	cfg    config.SIP
	reg    *prometheus.Registry
	// toXMPP receives what sipside publishes for the component.
	toXMPP chan store.Event

	stop    context.CancelFunc
	runDone chan error
}

type envOption func(*config.SIP, *Server)

// startEnv starts the peer, the bus, the component stand-in and sipside.
func startEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, toXMPP: make(chan store.Event, 64), reg: prometheus.NewRegistry()}
	e.peer = sipua.Start(t, sipua.Options{User: "bob", Domain: "sip.test", Logger: testLog()})
	e.bus = memstore.New(memstore.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	t.Cleanup(func() { e.bus.Close() })
	var err error
	e.mapper, err = address.NewMapper(address.Config{SIPDomains: []string{"sip.test"}, XMPPDomains: []string{"xmpp.test"}})
	if err != nil {
		t.Fatal(err)
	}

	e.cfg = config.SIP{
		ListenUDP:       "127.0.0.1:0",
		ListenTCP:       "127.0.0.1:0",
		Domains:         []string{"xmpp.test"},
		OutboundProxy:   e.peer.Addr(),
		TrustedProxies:  []string{"127.0.0.1"},
		DeliveryWait:    config.Duration{Duration: 400 * time.Millisecond},
		MaxMessageBytes: 64 << 10,
	}
	var tweaks []func(*Server)
	for _, o := range opts {
		o(&e.cfg, nil)
		tweaks = append(tweaks, func(s *Server) { o(nil, s) })
	}
	e.srv, err = New(e.cfg, Deps{Bus: e.bus, Store: e.bus, Mapper: e.mapper, Log: testLog(), Metrics: e.reg, Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.retryBase, e.srv.retryMax = 10*time.Millisecond, 20*time.Millisecond
	for _, f := range tweaks {
		f(e.srv)
	}

	ctx, cancel := context.WithCancel(context.Background())
	compCtx, compCancel := context.WithCancel(context.Background())
	go func() {
		_ = e.bus.Consume(compCtx, model.TopicToXMPP, "component", "c1", func(_ context.Context, ev store.Event) error {
			e.toXMPP <- ev
			return nil
		})
	}()
	e.runDone = make(chan error, 1)
	go func() { e.runDone <- e.srv.Run(ctx) }()
	e.stop = cancel
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.runDone:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		compCancel()
	})
	deadline := time.Now().Add(5 * time.Second)
	for !e.srv.Ready() {
		select {
		case err := <-e.runDone:
			t.Fatalf("Run: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("sipside not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return e
}

// withConfig changes the configuration before New.
func withConfig(f func(*config.SIP)) envOption {
	return func(c *config.SIP, s *Server) {
		if c != nil {
			f(c)
		}
	}
}

// withServer changes the Server after New, before Run.
func withServer(f func(*Server)) envOption {
	return func(c *config.SIP, s *Server) {
		if s != nil {
			f(s)
		}
	}
}

// parleyAddr is sipside's listen address for transport ("udp" or "tcp").
func (e *env) parleyAddr(transport string) string {
	return e.srv.Addr(transport).String()
}

// send sends a MESSAGE from the peer straight to sipside.
func (e *env) send(ctx context.Context, transport, to, contentType, body string, opts ...sipua.SendOption) (*sip.Response, error) {
	opts = append([]sipua.SendOption{sipua.WithDestination(e.parleyAddr(transport)), sipua.WithTransport(transport)}, opts...)
	_, res, err := e.peer.SendMessage(ctx, to, contentType, body, opts...)
	return res, err
}

// nextEvent waits for the next event for the component.
func (e *env) nextEvent(d time.Duration) (store.Event, bool) {
	e.t.Helper()
	select {
	case ev := <-e.toXMPP:
		return ev, true
	case <-time.After(d):
		return store.Event{}, false
	}
}

// mustEvent waits for the next event for the component or fails.
func (e *env) mustEvent() store.Event {
	e.t.Helper()
	ev, ok := e.nextEvent(5 * time.Second)
	if !ok {
		e.t.Fatal("no event published for the component")
	}
	return ev
}

// noEvent checks that nothing reaches the component for a while.
func (e *env) noEvent(d time.Duration) {
	e.t.Helper()
	if ev, ok := e.nextEvent(d); ok {
		e.t.Fatalf("unexpected event for the component: %+v (%s)", ev, ev.Data)
	}
}

func decode[T any](t *testing.T, ev store.Event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(ev.Data, &v); err != nil {
		t.Fatalf("decode %s event: %v", ev.Type, err)
	}
	return v
}

// reply publishes the component's verdict on msg (carried by ev).
func (e *env) reply(ev store.Event, msg model.Message, xerr *model.Error) {
	e.t.Helper()
	data, _ := json.Marshal(model.Result{ID: msg.ID, EventID: ev.ID, Err: xerr})
	if err := e.bus.Publish(context.Background(), msg.ReplyTo, store.Event{ID: "r:" + ev.ID, Key: msg.ConvID, Type: model.EventResult, Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

// publishToSIP publishes a message from an XMPP user for the SIP side.
func (e *env) publishToSIP(eventID string, msg model.Message) {
	e.t.Helper()
	data, _ := json.Marshal(msg)
	if err := e.bus.Publish(context.Background(), model.TopicToSIP, store.Event{ID: eventID, Key: msg.ConvID, Type: model.EventMessage, Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

// asyncResult is a response that arrives later.
type asyncResult struct {
	res *sip.Response
	err error
	at  time.Time
}

func (e *env) sendAsync(transport, to, contentType, body string, opts ...sipua.SendOption) <-chan asyncResult {
	ch := make(chan asyncResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := e.send(ctx, transport, to, contentType, body, opts...)
		ch <- asyncResult{res, err, time.Now()}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan asyncResult) asyncResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("MESSAGE: %v", r.err)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	return asyncResult{}
}

// freeAddr returns a loopback address nothing listens on (TCP and UDP).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// rawUDP sends hand-written requests and reads the answers, for what sipua
// cannot express (retransmissions, missing headers, other methods).
type rawUDP struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawUDP(t *testing.T, ip string) *rawUDP {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUDP{t: t, conn: c}
}

func (r *rawUDP) addr() string { return r.conn.LocalAddr().String() }

// request renders a request with the usual headers; extra holds more
// header lines; a header named in drop is left out.
func (r *rawUDP) request(method, branch, callID, fromTag, body string, extra []string, drop ...string) string {
	hdrs := []string{
		"Via: SIP/2.0/UDP " + r.addr() + ";branch=z9hG4bK" + branch,
		"Max-Forwards: 70",
		"From: <sip:bob@sip.test>;tag=" + fromTag,
		"To: <sip:alice@xmpp.test>",
		"Call-ID: " + callID,
		"CSeq: 1 " + method,
	}
	if body != "" {
		hdrs = append(hdrs, "Content-Type: text/plain")
	}
	hdrs = append(hdrs, extra...)
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:alice@xmpp.test SIP/2.0\r\n", method)
next:
	for _, h := range hdrs {
		for _, d := range drop {
			if strings.HasPrefix(h, d+":") {
				continue next
			}
		}
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

func (r *rawUDP) send(to, msg string) {
	r.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.WriteToUDP([]byte(msg), ua); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next response, or nil after d.
func (r *rawUDP) recv(d time.Duration) *sip.Response {
	r.t.Helper()
	buf := make([]byte, 65535)
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			r.t.Fatalf("unparsable answer: %v\n%s", err, buf[:n])
		}
		if res, ok := m.(*sip.Response); ok {
			return res
		}
	}
}

// mustRecv returns the next final response or fails.
func (r *rawUDP) mustRecv() *sip.Response {
	r.t.Helper()
	for {
		res := r.recv(5 * time.Second)
		if res == nil {
			r.t.Fatal("no response")
		}
		if !res.IsProvisional() {
			return res
		}
	}
}

// hasToTag checks RFC 3261 §8.2.6.2 on a response.
func hasToTag(res *sip.Response) bool {
	to := res.To()
	if to == nil {
		return false
	}
	tag, ok := to.Params.Get("tag")
	return ok && tag != ""
}

func header(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// counter reads a counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// newRequestFrom is a bare request whose transport source is addr.
func newRequestFrom(addr string) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "alice", Host: "xmpp.test"})
	req.SetSource(addr)
	return req
}
