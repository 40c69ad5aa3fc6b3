package sipside

import (
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// allowed lists the methods sipside answers (RFC 3261 §20.5).
const allowed = "MESSAGE, OPTIONS"

// accepted lists the MESSAGE bodies sipside takes (RFC 3261 §20.1).
const accepted = "text/plain, message/cpim"

// retryAfterSeconds is what a 503 tells the proxy to wait.
const retryAfterSeconds = "5"

// methodHandler handles one request that passed the guard. It answers
// through respond.
type methodHandler func(req *sip.Request, tx sip.ServerTransaction)

// routes registers one handler per method family on srv; every request
// goes through guard first.
func (s *Server) routes(srv *sipgo.Server) {
	srv.OnMessage(s.guard(s.onMessage))
	srv.OnOptions(s.guard(s.onOptions))
	srv.OnNoRoute(s.guard(s.onUnsupported))
}

// guard answers what no method handler should see, in this order: nothing
// for ACK (never answered), 503 while draining, 403 for untrusted sources,
// 400 for requests missing the headers a response needs, 403 for forged
// identities, 481 for a stray CANCEL, 420 for extensions we do not support.
func (s *Server) guard(next methodHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() {
			return // an ACK matching no transaction: absorb it (RFC 3261 §17.2.3)
		}
		if !s.begin() {
			s.respond(req, tx, refuse(503, "", nil, sip.NewHeader("Retry-After", retryAfterSeconds)))
			return
		}
		defer s.inflight.Done()

		if e := s.checkSource(req); e != nil {
			s.respond(req, tx, e)
			return
		}
		if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
			s.respond(req, tx, refuse(400, "Missing From, To, Call-ID or CSeq", nil))
			return
		}
		if e := s.checkIdentity(req); e != nil {
			s.respond(req, tx, e)
			return
		}
		if req.IsCancel() {
			// sipgo matched no transaction for it (we answer every request
			// at once or with a final answer within DeliveryWait).
			s.respond(req, tx, refuse(481, "", nil))
			return
		}
		if ext := requiredExtensions(req); ext != "" {
			// We support no extensions (RFC 3261 §8.2.2.3).
			s.respond(req, tx, refuse(420, "", nil, sip.NewHeader("Unsupported", ext)))
			return
		}
		next(req, tx)
	}
}

// requiredExtensions joins the option tags of every Require header.
func requiredExtensions(req *sip.Request) string {
	var tags []string
	for _, h := range req.GetHeaders("Require") {
		for _, t := range strings.Split(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return strings.Join(tags, ", ")
}

// onOptions answers OPTIONS with what sipside can do (RFC 3261 §11.2).
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	res.AppendHeader(sip.NewHeader("Accept", accepted))
	s.send(req, tx, res)
}

// onUnsupported answers every other method 405 with Allow (RFC 3261 §8.2.1).
func (s *Server) onUnsupported(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, refuse(405, "", nil, sip.NewHeader("Allow", allowed)))
}

// respond sends the final response that e describes.
func (s *Server) respond(req *sip.Request, tx sip.ServerTransaction, e *sipError) {
	s.send(req, tx, errorResponse(req, e))
}

// errorResponse builds the response e describes.
func errorResponse(req *sip.Request, e *sipError) *sip.Response {
	res := sip.NewResponseFromRequest(req, e.Status, e.Reason, nil)
	for _, h := range e.Headers {
		res.AppendHeader(h)
	}
	return res
}

// send writes res on tx and counts it. sip.NewResponseFromRequest copies
// Via, From, To, Call-ID and CSeq and adds a To tag to every response but
// 100 (RFC 3261 §8.2.6.2); ensureToTag keeps that promise explicit.
func (s *Server) send(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	ensureToTag(res)
	s.metrics.requestsIn.WithLabelValues(methodLabel(string(req.Method)), classLabel(res.StatusCode)).Inc()
	if err := tx.Respond(res); err != nil {
		s.log.Warn("SIP response not sent", "call_id", callID(req), "status", res.StatusCode, "err", err)
	}
}

func ensureToTag(res *sip.Response) {
	if res.StatusCode == 100 {
		return
	}
	if to := res.To(); to != nil && !to.Params.Has("tag") {
		to.Params.Add("tag", sip.GenerateTagN(16))
	}
}

// callID is the request's Call-ID for logs ("" when missing).
func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
