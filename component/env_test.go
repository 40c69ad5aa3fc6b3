package component

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	xcomponent "mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/xmppclient"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/memstore"
)

// The test topology: Prosody serves xmpp.test (users alice, carol) and
// three components: sip.test (transparent SIP domain), gw.test (gateway
// domain) served by the Component under test, and probe.test, a bare
// component the tests use to send raw stanzas through Prosody.
const (
	xmppDomain  = "xmpp.test"
	sipDomain   = "sip.test"
	gwDomain    = "gw.test"
	probeDomain = "probe.test"
	secret      = "s3cr3t-for-tests"
	probeSecret = "probe-secret"
)

type envOptions struct {
	secret       string   // default: secret
	domains      []string // default: sip.test
	gateway      string   // default: gw.test; "-" for none
	pingInterval time.Duration
	maxStanza    int
}

// env is a running Prosody, a memstore bus and the Component under test.
type env struct {
	t       *testing.T
	prosody *harness.Prosody
	bus     *flakyBus
	mem     *memstore.Backend
	mapper  *address.Mapper
	reg     *prometheus.Registry
	comp    *Component
	logs    *syncBuffer

	cancel context.CancelFunc
	done   chan error

	toSIP chan store.Event
}

// syncBuffer collects logs; they are printed only when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// flakyBus fails publishes to TopicToSIP on demand.
type flakyBus struct {
	store.Bus
	failToSIP atomic.Bool
}

func (b *flakyBus) Publish(ctx context.Context, topic string, ev store.Event) error {
	if topic == model.TopicToSIP && b.failToSIP.Load() {
		return fmt.Errorf("injected failure: %w", store.ErrUnavailable)
	}
	return b.Bus.Publish(ctx, topic, ev)
}

// newEnv starts Prosody and builds (but does not run) the Component.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.secret == "" {
		o.secret = secret
	}
	if o.domains == nil {
		o.domains = []string{sipDomain}
	}
	switch o.gateway {
	case "":
		o.gateway = gwDomain
	case "-":
		o.gateway = ""
	}
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Domain:     xmppDomain,
		Components: map[string]string{sipDomain: secret, gwDomain: secret, probeDomain: probeSecret},
		Users:      map[string]string{"alice": "alice", "carol": "carol"},
	})
	mapper, err := address.NewMapper(address.Config{
		SIPDomains:  []string{sipDomain},
		XMPPGateway: gwDomain,
		XMPPDomains: []string{xmppDomain},
	})
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(memstore.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(func() { mem.Close() })
	e := &env{
		t: t, prosody: p, bus: &flakyBus{Bus: mem}, mem: mem, mapper: mapper,
		reg: prometheus.NewRegistry(), logs: &syncBuffer{}, toSIP: make(chan store.Event, 100),
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config.Component{
		Server:         p.ComponentAddr,
		Domains:        o.domains,
		GatewayDomain:  o.gateway,
		PingInterval:   config.Duration{Duration: o.pingInterval},
		MaxStanzaBytes: o.maxStanza,
	}
	e.comp, err = New(cfg, o.secret, Deps{
		Bus: e.bus, Store: mem, Mapper: mapper, Log: log, Metrics: e.reg, Instance: "component-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.comp.backoffMax = time.Second
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component log:\n%s", e.logs.String())
		}
	})
	return e
}

// start runs the Component and waits until every domain is connected.
func (e *env) start() {
	e.t.Helper()
	e.run()
	e.waitReady(true)
}

// run starts Run in the background; stop (or the test's end) ends it.
func (e *env) run() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.comp.Run(ctx) }()
	e.t.Cleanup(func() { e.stop() })
}

// stop ends Run and returns its result.
func (e *env) stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(20 * time.Second):
		e.t.Errorf("Run did not return within 20s of cancel")
		return nil
	}
}

func (e *env) waitReady(want bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.comp.Ready() != want {
		if time.Now().After(deadline) {
			e.t.Fatalf("Ready() stayed %v for 10s", !want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumeToSIP collects what the component publishes for the SIP side.
func (e *env) consumeToSIP() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.mem.Consume(ctx, model.TopicToSIP, "test-sip", "t", func(_ context.Context, ev store.Event) error {
			e.toSIP <- ev
			return nil
		})
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

// nextToSIP returns the next event published to TopicToSIP.
func (e *env) nextToSIP(timeout time.Duration) (store.Event, bool) {
	select {
	case ev := <-e.toSIP:
		return ev, true
	case <-time.After(timeout):
		return store.Event{}, false
	}
}

// results collects the Results published on topic.
func (e *env) results(topic string) <-chan model.Result {
	ch := make(chan model.Result, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.mem.Consume(ctx, topic, "test-results", "t", func(_ context.Context, ev store.Event) error {
			var r model.Result
			if ev.Type != model.EventResult {
				e.t.Errorf("event of type %q on %s", ev.Type, topic)
			}
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				e.t.Errorf("result: %v", err)
			}
			ch <- r
			return nil
		})
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return ch
}

// publish puts a model value on TopicToXMPP.
func (e *env) publish(id, typ string, v any) {
	e.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.mem.Publish(context.Background(), model.TopicToXMPP, store.Event{ID: id, Key: "k", Type: typ, Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) client(user string) *xmppclient.Client {
	e.t.Helper()
	return xmppclient.Start(e.t, xmppclient.Options{
		JID: user + "@" + xmppDomain + "/test", Password: user, Addr: e.prosody.C2SAddr,
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// probe is a bare XEP-0114 component (probe.test) that writes raw stanzas
// into Prosody and records, as XML text, every stanza Prosody routes to it.
type probe struct {
	t    *testing.T
	sess *xmpp.Session
	mu   sync.Mutex
	got  []string
	wake chan struct{}
}

func startProbe(t *testing.T, addr string) *probe {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, err := xcomponent.NewSession(ctx, jid.MustParse(probeDomain), []byte(probeSecret), conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	p := &probe{t: t, sess: sess, wake: make(chan struct{}, 1)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var b bytes.Buffer
			enc := xml.NewEncoder(&b)
			if err := enc.EncodeToken(start.Copy()); err != nil {
				return err
			}
			if _, err := xmlstream.Copy(enc, r); err != nil {
				return err
			}
			if err := enc.Flush(); err != nil {
				return err
			}
			p.mu.Lock()
			p.got = append(p.got, b.String())
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
			return nil
		}))
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		conn.Close()
		<-served
	})
	return p
}

// send writes raw XML (one stanza) from probe.test.
func (p *probe) send(raw string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.sess.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		p.t.Fatalf("probe send: %v", err)
	}
}

// wait returns the first stanza not yet returned that contains every one
// of parts.
func (p *probe) wait(timeout time.Duration, parts ...string) (string, error) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for i := 0; i < len(p.got); i++ {
			ok := true
			for _, s := range parts {
				if !strings.Contains(p.got[i], s) {
					ok = false
					break
				}
			}
			if ok {
				s := p.got[i]
				p.got = append(p.got[:i], p.got[i+1:]...)
				p.mu.Unlock()
				return s, nil
			}
		}
		all := strings.Join(p.got, "\n")
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-deadline:
			return "", errors.New("probe: no stanza with " + strings.Join(parts, ", ") + "; received:\n" + all)
		}
	}
}

// count is how many stanzas the probe holds that contain s.
func (p *probe) count(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, g := range p.got {
		if strings.Contains(g, s) {
			n++
		}
	}
	return n
}

// value reads a counter, gauge or histogram (its sample count).
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}
