package component

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the component's Prometheus series. Label values come from
// fixed sets (stanzaKind, outcomes) or from the configured domains, so the
// number of series is bounded.
type metrics struct {
	stanzas         *prometheus.CounterVec // direction, kind
	publishFailures *prometheus.CounterVec // event
	reconnects      *prometheus.CounterVec // domain
	up              *prometheus.GaugeVec   // domain
	bounces         *prometheus.CounterVec // matched
	deliveries      *prometheus.CounterVec // event, outcome
	oversize        prometheus.Counter
	barrier         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, domains []string) (*metrics, error) {
	m := &metrics{
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "stanzas_total",
			Help: "Stanzas received from (in) and written to (out) the XMPP server, by kind.",
		}, []string{"direction", "kind"}),
		publishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "bus_publish_failures_total",
			Help: "Bus publishes that failed, by event type.",
		}, []string{"event"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "reconnects_total",
			Help: "Times a stream to the XMPP server was lost or could not be opened and is retried.",
		}, []string{"domain"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "parley", Subsystem: "component", Name: "stream_up",
			Help: "1 while the XEP-0114 stream for the domain is established.",
		}, []string{"domain"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "bounces_total",
			Help: "Message error stanzas received for messages we wrote: matched to a delivery barrier, or late.",
		}, []string{"matched"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "deliveries_total",
			Help: "Bus events handled, by type and outcome (ok, bounced, retry, rejected).",
		}, []string{"event", "outcome"}),
		oversize: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "component", Name: "oversize_stanzas_total",
			Help: "Inbound stanzas refused because they exceeded component.max_stanza_bytes.",
		}),
		barrier: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "parley", Subsystem: "component", Name: "barrier_seconds",
			Help:    "Time from writing a message to its delivery verdict (barrier ping answered).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, d := range domains {
		m.up.WithLabelValues(d).Set(0)
		m.reconnects.WithLabelValues(d)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.stanzas, m.publishFailures, m.reconnects, m.up, m.bounces, m.deliveries, m.oversize, m.barrier} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("component metrics: already registered (one Component per registry): %w", err)
			}
			return nil, fmt.Errorf("component metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) in(kind string)  { m.stanzas.WithLabelValues("in", kind).Inc() }
func (m *metrics) out(kind string) { m.stanzas.WithLabelValues("out", kind).Inc() }
