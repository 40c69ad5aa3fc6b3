package lyncemu

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// edge is what the Access Edge and the Front End add to and take from the
// messages between the federation link and the emulated clients
// (lync-dialect.md §1.5). Both live at the emulator's own address: their
// Record-Route entries carry an IP literal so that Kamailio can reach them
// without DNS (a real Edge records its FQDN).
type edge struct {
	edgeFQDN, feFQDN string
	host             string
	port             int
	quoted           bool // ms-internal-info quoted, as captured
}

// trustHeader is the header the Edge adds to what comes in from a
// federated partner ([MS-SIPRE] §2.2.15; ms-source-type DirectPartner
// for an allowed domain, §1.5).
const trustHeader = "ms-edge-proxy-message-trust"

func newEdge(edgeFQDN, feFQDN, host string, port int, quoted bool) edge {
	return edge{edgeFQDN: edgeFQDN, feFQDN: feFQDN, host: host, port: port, quoted: quoted}
}

func (g edge) trustValue() string {
	return "ms-source-type=DirectPartner;ms-ep-fqdn=" + g.edgeFQDN +
		";ms-source-verified-user=verified;ms-source-network=federation"
}

// routes are the Record-Route entries the Front End and the Edge add to
// one dialog, in the shapes of the captures: ms-fe and ms-route-sig on the
// Front End's, opaque=state, ms-key-info and ms-route-sig on the Edge's
// (§1.5, TC samples 03, 15). Peers must echo them verbatim in Route.
type routes struct {
	fe, edge sip.Uri
}

func (g edge) newRoutes() routes {
	fe := sip.Uri{Scheme: "sip", Host: g.host, Port: g.port, UriParams: sip.NewParams()}
	fe.UriParams.Add("transport", "tls")
	fe.UriParams.Add("ms-fe", g.feFQDN)
	fe.UriParams.Add("lr", "")
	fe.UriParams.Add("ms-route-sig", newSig(24))
	ed := sip.Uri{Scheme: "sip", Host: g.host, Port: g.port, UriParams: sip.NewParams()}
	ed.UriParams.Add("transport", "tls")
	ed.UriParams.Add("opaque", "state:T:F:Ci.R"+hexToken(4))
	ed.UriParams.Add("lr", "")
	ed.UriParams.Add("ms-key-info", newSig(30))
	ed.UriParams.Add("ms-route-sig", newSig(24))
	return routes{fe: fe, edge: ed}
}

// own reports whether u is one of rs's entries.
func (rs routes) own(u sip.Uri) bool {
	s := u.String()
	return s == rs.fe.String() || s == rs.edge.String()
}

// inRoute is the Route set a request from the partner must carry to reach
// the client through the Edge and the Front End: Edge first.
func (rs routes) inRoute() []string { return []string{rs.edge.String(), rs.fe.String()} }

// inbound does what the Edge does to a request or response coming in from
// the partner: a partner must never send ms-edge-proxy-message-trust
// ("MUST NOT be added by the protocol client"); the Edge adds its own.
func (g edge) inbound(m headerSet) (violations []string) {
	if removeAll(m, trustHeader) {
		violations = append(violations, "the partner sent "+trustHeader+" (a gateway must never send it)")
	}
	m.AppendHeader(sip.NewHeader(trustHeader, g.trustValue()))
	return violations
}

// consumeRoutes checks that an in-dialog request carries exactly the
// dialog's Edge and Front End entries, in order and unchanged, and removes
// the Route headers (the Edge and the Front End each pop theirs).
func consumeRoutes(req *sip.Request, rs routes) (violations []string) {
	got := routeValues(req)
	want := rs.inRoute()
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		violations = append(violations, "in-dialog Route set changed: got ["+strings.Join(got, ", ")+
			"], want ["+strings.Join(want, ", ")+"] (Record-Route entries must be echoed verbatim)")
	}
	removeAll(req, "Route")
	return violations
}

// headerSet is what requests and responses share for header editing.
type headerSet interface {
	GetHeader(name string) sip.Header
	RemoveHeader(name string) bool
	AppendHeader(h sip.Header)
}

// removeAll removes every header called name (case-insensitive) and
// reports whether there was one.
func removeAll(m headerSet, name string) bool {
	removed := false
	for {
		h := m.GetHeader(name)
		if h == nil || !m.RemoveHeader(h.Name()) {
			return removed
		}
		removed = true
	}
}

// routeValues are the URIs of every Route header, in order.
func routeValues(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Route") {
		if r, ok := h.(*sip.RouteHeader); ok {
			out = append(out, r.Address.String())
			continue
		}
		for _, v := range strings.Split(h.Value(), ",") {
			out = append(out, strings.Trim(strings.TrimSpace(v), "<>"))
		}
	}
	return out
}

// outbound adds what the Front End and the Edge add to a request the
// client sends: the client's Via gets the Front End's received
// parameters, then the Front End's and the Edge's Vias go on top
// (branched=FALSE, ms-internal-info, ms-received-port/-cid: TC samples
// 01, 03, 15). For a dialog-creating request, rs's Record-Route entries
// (Front End first, then the Edge on top). Max-Forwards drops by two.
// transport, host and port are those of the hop to the partner.
func (g edge) outbound(req *sip.Request, transport, host string, port int, rs *routes) {
	if v := req.Via(); v != nil {
		v.Params.Add("ms-received-port", strconv.Itoa(v.Port))
		v.Params.Add("ms-received-cid", strings.ToUpper(hexToken(3)))
	}
	fe := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS", Host: g.host, Port: g.port, Params: sip.NewParams()}
	fe.Params.Add("branch", newBranch())
	fe.Params.Add("branched", "FALSE")
	// Captures quote it. sipgo v1.7.2's Via parser mangles quoted
	// parameters (and Kamailio then drops the answer that echoes the
	// mangled Via), so it is a plain token unless Options.QuotedViaParams.
	info := newSig(30)
	if g.quoted {
		info = `"` + info + `"`
	}
	fe.Params.Add("ms-internal-info", info)
	ed := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport), Host: host, Port: port, Params: sip.NewParams()}
	ed.Params.Add("branch", newBranch())
	ed.Params.Add("rport", "")
	req.PrependHeader(fe)
	req.PrependHeader(ed)
	if rs != nil {
		// After the Vias: the Edge's entry above the Front End's.
		req.AppendHeaderAfter(&sip.RecordRouteHeader{Address: rs.fe}, "Via")
		req.AppendHeaderAfter(&sip.RecordRouteHeader{Address: rs.edge}, "Via")
	}
	if mf := req.MaxForwards(); mf != nil && *mf > 2 {
		*mf -= 2
	}
}
