// Package component is Parley's XMPP side: a XEP-0114 external component
// that serves the XMPP domains standing for SIP domains. It keeps one
// stream per served domain to the XMPP server (reconnecting with backoff),
// answers XEP-0030 disco and XEP-0199 ping for the domain and every SIP
// user in it, turns <message/> stanzas into model.Message events on the bus
// (model.TopicToSIP) and writes the events it consumes from
// model.TopicToXMPP as stanzas, reporting bounces back to the SIP side.
//
// It speaks XMPP and the neutral model; it must not know about SIP.
//
// Files, one job each: component.go (wiring, Run), stream.go (one domain's
// session), reconnect.go (backoff and fatal configuration errors),
// conn.go (stanza size bound), router.go (dispatch and stanza errors),
// stanza.go (stanza decoding and building), disco.go, ping.go (answers and
// keepalive), message_in.go, message_out.go, barrier.go (delivery verdicts)
// and metrics.go.
package component
