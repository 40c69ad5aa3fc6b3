package lyncemu_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// plainUA is an RFC 3261 SIP user agent with none of Lync's habits (no
// epid, no GRUU, no ms-* headers), on UDP, registered at Kamailio: the
// kind of peer Parley's SIP side is to a Lync domain. It opens one IM
// session at a time and records the requests it receives in it.
type plainUA struct {
	t      *testing.T
	user   string
	domain string
	proxy  string
	ua     *sipgo.UserAgent
	client *sipgo.Client
	conn   net.PacketConn
	ip     string
	port   int

	mu       sync.Mutex
	received []*sip.Request
	notify   chan struct{}

	// the session
	callID, tag, remoteTag string
	remoteTarget           sip.Uri
	routes                 []sip.Uri
	cseq                   uint32
	peer                   sip.Uri
}

func startPlainUA(t *testing.T, user, domain, proxy string) *plainUA {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := conn.LocalAddr().(*net.UDPAddr)
	p := &plainUA{t: t, user: user, domain: domain, proxy: proxy, conn: conn, ip: a.IP.String(), port: a.Port, notify: make(chan struct{})}
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("plain/1.0"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(p.ua)
	if err != nil {
		t.Fatal(err)
	}
	p.client, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(p.ip))
	if err != nil {
		t.Fatal(err)
	}
	record := func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.received = append(p.received, req)
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
		if tx != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	}
	srv.OnMessage(record)
	srv.OnBye(record)
	srv.OnInfo(record)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(conn) }()
	t.Cleanup(func() { p.ua.Close(); conn.Close(); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := p.ua.TransportLayer().GetConnection("udp", p.addr()); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plain UA: UDP listener not ready")
		}
		time.Sleep(time.Millisecond)
	}
	return p
}

func (p *plainUA) addr() string { return net.JoinHostPort(p.ip, strconv.Itoa(p.port)) }
func (p *plainUA) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: p.user, Host: p.domain}
}
func (p *plainUA) contact() *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: p.ip, Port: p.port}}
}

// do sends req to the proxy over UDP, from the listening socket.
func (p *plainUA) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: p.ip, Port: p.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	if req.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	req.SetTransport("UDP")
	req.SetDestination(p.proxy)
	req.Laddr = sip.Addr{IP: net.ParseIP(p.ip), Port: p.port}
	if req.IsAck() {
		return nil, p.client.WriteRequest(req, func(*sipgo.Client, *sip.Request) error { return nil })
	}
	return p.client.Do(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
}

func (p *plainUA) register(ctx context.Context) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: p.domain})
	f := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	f.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(f)
	req.AppendHeader(&sip.ToHeader{Address: p.aor()})
	cid := sip.CallIDHeader(sip.GenerateTagN(16))
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.REGISTER})
	req.AppendHeader(p.contact())
	exp := sip.ExpiresHeader(300)
	req.AppendHeader(&exp)
	res, err := p.do(ctx, req)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// message sends a pager-mode MESSAGE (outside a dialog).
func (p *plainUA) message(ctx context.Context, to, body string, hdrs ...sip.Header) (*sip.Response, error) {
	return p.outOfDialog(ctx, sip.MESSAGE, to, body, hdrs...)
}

// outOfDialog sends a request outside a dialog, with a text/plain body
// unless body is empty.
func (p *plainUA) outOfDialog(ctx context.Context, method sip.RequestMethod, to, body string, hdrs ...sip.Header) (*sip.Response, error) {
	var target sip.Uri
	if err := sip.ParseUri(to, &target); err != nil {
		return nil, err
	}
	req := sip.NewRequest(method, target)
	f := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	f.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(f)
	req.AppendHeader(&sip.ToHeader{Address: target})
	cid := sip.CallIDHeader(sip.GenerateTagN(16))
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if body != "" {
		ct := sip.ContentTypeHeader("text/plain")
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
	}
	return p.do(ctx, req)
}

// invite opens an IM session with to: a plain m=message offer, no first
// message in headers.
func (p *plainUA) invite(ctx context.Context, to string, hdrs ...sip.Header) (*sip.Response, error) {
	if err := sip.ParseUri(to, &p.peer); err != nil {
		return nil, err
	}
	p.callID, p.tag, p.cseq = sip.GenerateTagN(16), sip.GenerateTagN(8), 1
	req := sip.NewRequest(sip.INVITE, p.peer)
	f := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	f.Params.Add("tag", p.tag)
	req.AppendHeader(f)
	req.AppendHeader(&sip.ToHeader{Address: p.peer})
	cid := sip.CallIDHeader(p.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(p.contact())
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody([]byte("v=0\r\no=- 0 0 IN IP4 " + p.ip + "\r\ns=session\r\nc=IN IP4 " + p.ip +
		"\r\nt=0 0\r\nm=message " + strconv.Itoa(p.port) + " sip null\r\na=accept-types:text/plain text/html\r\n"))
	res, err := p.do(ctx, req)
	if err != nil || res.StatusCode >= 300 {
		return res, err
	}
	p.remoteTag, _ = res.To().Params.Get("tag")
	p.remoteTarget = res.Contact().Address
	p.routes = nil
	for _, h := range res.GetHeaders("Record-Route") {
		p.routes = append(p.routes, h.(*sip.RecordRouteHeader).Address)
	}
	slices.Reverse(p.routes)
	_, err = p.do(ctx, p.inDialog(sip.ACK, 1))
	return res, err
}

func (p *plainUA) inDialog(method sip.RequestMethod, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, p.remoteTarget)
	f := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	f.Params.Add("tag", p.tag)
	req.AppendHeader(f)
	to := &sip.ToHeader{Address: p.peer, Params: sip.NewParams()}
	to.Params.Add("tag", p.remoteTag)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(p.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	for _, r := range p.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	return req
}

// send sends an in-dialog request with a body.
func (p *plainUA) send(ctx context.Context, method sip.RequestMethod, contentType, body string) (*sip.Response, error) {
	p.cseq++
	req := p.inDialog(method, p.cseq)
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
	}
	return p.do(ctx, req)
}

// wait returns the first received request after skip that matches.
func (p *plainUA) wait(ctx context.Context, match func(*sip.Request) bool) (*sip.Request, error) {
	for {
		p.mu.Lock()
		for _, r := range p.received {
			if match(r) {
				p.mu.Unlock()
				return r, nil
			}
		}
		ch := p.notify
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("plain UA: no matching request: %w", ctx.Err())
		}
	}
}
