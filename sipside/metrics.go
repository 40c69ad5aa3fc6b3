package sipside

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are sipside's Prometheus series. Every label has a small fixed
// set of values (see the label helpers below).
type metrics struct {
	requestsIn     *prometheus.CounterVec // method, class
	messagesOut    *prometheus.CounterVec // transport (udp, tcp, none), result
	trustRejects   *prometheus.CounterVec // reason
	deliveryWait   *prometheus.CounterVec // outcome
	bounces        prometheus.Counter
	undeliverables prometheus.Counter
}

// Trust rejection reasons.
const (
	rejectUntrustedSource = "untrusted_source"
	rejectServedIdentity  = "served_identity"
)

// Delivery wait outcomes: what an inbound MESSAGE was answered after Publish.
const (
	waitOK       = "200"
	waitError    = "error"
	waitAccepted = "202"
)

// Outbound results besides the response class.
const (
	outTimeout   = "timeout"
	outTransport = "transport_error"
	outGaveUp    = "gave_up"
	outRejected  = "unmappable"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requestsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_requests_total",
			Help: "SIP requests received, by method and the class of Parley's final response.",
		}, []string{"method", "class"}),
		messagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_messages_out_total",
			Help: "MESSAGE requests sent, by transport and result (response class, timeout, transport_error, gave_up, unmappable).",
		}, []string{"transport", "result"}),
		trustRejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_trust_rejections_total",
			Help: "Requests refused with 403 by reason (untrusted_source, served_identity).",
		}, []string{"reason"}),
		deliveryWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sip_delivery_wait_total",
			Help: "Inbound MESSAGEs handed to the bus, by how they were answered: 200 (XMPP side delivered), error (XMPP side failed), 202 (no verdict in time).",
		}, []string{"outcome"}),
		bounces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_sip_xmpp_bounces_total",
			Help: "XMPP errors about messages from SIP that had already been answered.",
		}),
		undeliverables: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_sip_bus_events_unusable_total",
			Help: "Bus events sipside could not decode or does not handle (logged and acknowledged).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requestsIn, m.messagesOut, m.trustRejects, m.deliveryWait, m.bounces, m.undeliverables} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sipside: register metrics: %w", err)
		}
	}
	return m, nil
}

// methodLabel bounds the method label; anything unknown is "other".
func methodLabel(m string) string {
	switch m {
	case "MESSAGE", "OPTIONS", "INVITE", "ACK", "BYE", "CANCEL", "REGISTER",
		"SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "PRACK", "UPDATE":
		return m
	}
	return "other"
}

// classLabel renders 1xx..6xx.
func classLabel(code int) string {
	if code < 100 || code > 699 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}
