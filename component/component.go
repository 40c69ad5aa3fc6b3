package component

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/config"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// Deps are the component's collaborators.
type Deps struct {
	Bus store.Bus
	// Store remembers which bus events were handled (store.Deduplicate);
	// nil turns de-duplication off.
	Store  store.Store
	Mapper *address.Mapper
	Log    *slog.Logger
	// Metrics receives the component's collectors; nil registers nothing.
	Metrics prometheus.Registerer
	// Instance is this process's consumer name on the bus, stable across
	// restarts so that a restarted process picks up what it left pending.
	Instance string
}

// Timings. They are fields of Component (set from these defaults) so tests
// can shorten them.
const (
	defaultPingInterval = 60 * time.Second
	defaultMaxStanza    = 256 << 10
	dialTimeout         = 10 * time.Second
	handshakeTimeout    = 10 * time.Second
	// publishTimeout bounds one bus Publish of an inbound message.
	publishTimeout = 5 * time.Second
	// deliveryTimeout bounds one outbound delivery, barrier included.
	deliveryTimeout = 15 * time.Second
	// closeGrace is how long a closing stream waits for the server's
	// </stream:stream>.
	closeGrace = 2 * time.Second
	// stanzaOverhead is what a message stanza needs beyond its texts
	// (element names, addresses, id).
	stanzaOverhead = 4 << 10
	// consumerGroup is the bus consumer group of all component instances.
	consumerGroup = "component"
	// dedupTTL is how long a handled event id is remembered.
	dedupTTL = 24 * time.Hour
)

// Component is the XEP-0114 external component: one stream per served
// domain, and the bus consumer that writes events as stanzas.
type Component struct {
	cfg     config.Component
	secret  []byte
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	streams map[string]*stream // by domain
	domains []string           // in configuration order

	pingInterval    time.Duration
	maxStanza       int64
	backoffMin      time.Duration
	backoffMax      time.Duration
	publishTimeout  time.Duration
	deliveryTimeout time.Duration

	running atomic.Bool
}

// New checks cfg and builds a Component. secret is the XEP-0114 shared
// secret (read from component.secret_file by the caller); it is never
// logged.
func New(cfg config.Component, secret string, deps Deps) (*Component, error) {
	if secret == "" {
		return nil, errors.New("component: empty secret: set component.secret_file (or component.secret)")
	}
	if cfg.Server == "" {
		return nil, errors.New("component: component.server is empty: set it to the XMPP server's component port (host:port)")
	}
	if deps.Bus == nil {
		return nil, errors.New("component: Deps.Bus is nil")
	}
	if deps.Mapper == nil {
		return nil, errors.New("component: Deps.Mapper is nil")
	}
	if deps.Instance == "" {
		return nil, errors.New("component: Deps.Instance is empty: each process needs a stable consumer name")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	var domains []string
	seen := map[string]bool{}
	all := append(append([]string(nil), cfg.Domains...), cfg.GatewayDomain)
	for _, d := range all {
		if d == "" {
			continue
		}
		j, err := jid.Parse(d)
		if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			return nil, fmt.Errorf("component: %q in component.domains/gateway_domain is not a domain name", d)
		}
		name := strings.ToLower(j.Domainpart())
		if seen[name] {
			return nil, fmt.Errorf("component: domain %q is configured twice", name)
		}
		seen[name] = true
		domains = append(domains, name)
	}
	if len(domains) == 0 {
		return nil, errors.New("component: no domain to serve: set component.domains or component.gateway_domain")
	}

	m, err := newMetrics(deps.Metrics, domains)
	if err != nil {
		return nil, err
	}
	c := &Component{
		cfg:             cfg,
		secret:          []byte(secret),
		deps:            deps,
		log:             deps.Log.With("role", "component"),
		metrics:         m,
		streams:         map[string]*stream{},
		domains:         domains,
		pingInterval:    cfg.PingInterval.Duration,
		maxStanza:       int64(cfg.MaxStanzaBytes),
		backoffMin:      100 * time.Millisecond,
		backoffMax:      30 * time.Second,
		publishTimeout:  publishTimeout,
		deliveryTimeout: deliveryTimeout,
	}
	if c.pingInterval <= 0 {
		c.pingInterval = defaultPingInterval
	}
	if c.maxStanza <= 0 {
		c.maxStanza = defaultMaxStanza
	}
	for _, d := range domains {
		c.streams[d] = newStream(c, d)
	}
	return c, nil
}

// Ready reports whether every served domain has an established stream.
func (c *Component) Ready() bool {
	for _, s := range c.streams {
		if s.current() == nil {
			return false
		}
	}
	return true
}

// Run connects every domain and consumes model.TopicToXMPP until ctx ends.
// Then it drains: it stops taking bus events, lets the delivery in flight
// finish (within its timeout), and closes every stream with
// </stream:stream>. It returns nil after a clean shutdown, or a
// *ConfigError as soon as the server refuses a domain for a reason no
// reconnect can cure (wrong secret, unknown host, ...).
func (c *Component) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("component: Run called twice")
	}
	defer c.running.Store(false)

	// Streams outlive ctx by the drain: they stop when stopStreams is called.
	streamCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStreams()
	fatal := make(chan error, len(c.streams))
	var streams sync.WaitGroup
	for _, d := range c.domains {
		s := c.streams[d]
		streams.Go(func() {
			if err := s.run(streamCtx); err != nil {
				fatal <- err
			}
		})
	}

	consumeCtx, stopConsume := context.WithCancel(ctx)
	defer stopConsume()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		c.consume(consumeCtx)
	}()

	var err error
	select {
	case <-ctx.Done():
		c.log.Info("component stopping: draining")
	case err = <-fatal:
		c.log.Error("component stopping: configuration error", "err", err)
	}
	stopConsume()
	<-consumed // the delivery in flight has finished
	stopStreams()
	streams.Wait()
	close(fatal)
	for e := range fatal {
		err = errors.Join(err, e)
	}
	c.log.Info("component stopped")
	return err
}

// consume runs the bus consumer for model.TopicToXMPP until ctx ends,
// restarting it (with backoff) if it returns early.
func (c *Component) consume(ctx context.Context) {
	h := c.dedup(c.handleEvent)
	b := newBackoff(c.backoffMin, c.backoffMax)
	for {
		start := time.Now()
		err := c.deps.Bus.Consume(ctx, model.TopicToXMPP, consumerGroup, c.deps.Instance, h)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			b.reset()
		}
		d := b.delay()
		c.log.Error("bus consumer stopped; restarting", "topic", model.TopicToXMPP, "err", err, "retry_in", d)
		if !sleep(ctx, d) {
			return
		}
	}
}

// dedup wraps h so that an event delivered again after it was handled is
// acknowledged without being handled twice.
// Without a Store (tests of the component alone) events are not
// de-duplicated.
func (c *Component) dedup(h store.Handler) store.Handler {
	if c.deps.Store == nil {
		return h
	}
	return store.Deduplicate(c.deps.Store, consumerGroup, dedupTTL, h)
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
