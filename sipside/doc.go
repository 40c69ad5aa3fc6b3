// Package sipside is Parley's SIP user agent: a UAS and UAC behind the
// customer's proxy (Kamailio/OpenSIPS) that speaks for the XMPP users of the
// domains Parley serves on the SIP side.
//
// Inbound, it accepts pager-mode MESSAGE requests (RFC 3428, RFC 7572) only
// from the proxies it trusts, turns them into model.Message events for the
// component and answers with what the XMPP side did (or 202 once the message
// is durably queued). Outbound, it consumes model.Message events from the
// bus and sends them as MESSAGE requests through the outbound proxy,
// reporting SIP failures back as model.MessageError.
//
// Each file does one job: server.go (lifecycle), settings.go (validated
// configuration), listen.go (listeners), router.go (request dispatch and
// responses), trust.go (who may talk to us), inbound.go, body.go and ids.go
// (MESSAGE in), waiters.go (the XMPP side's verdicts), outbound.go and
// outreq.go (MESSAGE out), attempts.go (retry bookkeeping), status.go (SIP
// statuses and errors), metrics.go.
//
// It must not know about XMPP stanzas or the component: it speaks SIP and
// the neutral model only.
package sipside
