package lyncemu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// prebuilt tells sipgo to send a request as built: the emulator writes
// every header itself, in Lync's shape.
func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// hop is where the emulator sends: the static proxy, and the transport and
// address of its own end of that hop.
func (e *Emulator) hop() (proxy, transport, host string, port int, err error) {
	e.mu.Lock()
	proxy = e.proxy
	e.mu.Unlock()
	if proxy == "" {
		return "", "", "", 0, errors.New("lyncemu: no proxy to send to (Options.Proxy / SetProxy)")
	}
	transport = e.opts.ProxyTransport
	host, port = e.ip.String(), e.port
	if transport != "tls" {
		host, port = e.plainIP.String(), e.plain
	}
	return proxy, transport, host, port, nil
}

// prepare passes a request the client built through the Front End and the
// Edge, and points it at the proxy.
func (e *Emulator) prepare(req *sip.Request, rs *routes) error {
	proxy, transport, host, port, err := e.hop()
	if err != nil {
		return err
	}
	if v := req.Via(); v != nil && v.Host == "" {
		v.Host, v.Port = e.ip.String(), e.port
	}
	e.edge.outbound(req, transport, host, port, rs)
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	req.SetTransport(strings.ToUpper(transport))
	req.SetDestination(proxy)
	if transport == "udp" {
		// From the listening socket, so answers come back to it.
		req.Laddr = sip.Addr{IP: e.plainIP, Port: e.plain}
		if err := e.waitUDPReady(); err != nil {
			return err
		}
	}
	return nil
}

// waitUDPReady waits until sipgo has registered the UDP listener (it does
// so asynchronously; sending from the port before that would bind it a
// second time).
func (e *Emulator) waitUDPReady() error {
	addr := e.PlainAddr()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := e.ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lyncemu: UDP listener %s not ready", addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// do sends a request and waits for its final answer, which then passes the
// Edge on its way in (ms-edge-proxy-message-trust added).
func (e *Emulator) do(ctx context.Context, req *sip.Request, rs *routes) (*sip.Response, error) {
	if err := e.prepare(req, rs); err != nil {
		return nil, err
	}
	res, err := e.client.Do(ctx, req, prebuilt)
	if err != nil {
		return nil, fmt.Errorf("lyncemu: %s to %s: %w", req.Method, req.Recipient.String(), err)
	}
	for _, v := range e.edge.inbound(res) {
		e.violate(fmt.Sprintf("%d answer to %s (call %s): %s", res.StatusCode, req.Method, callID(req), v))
	}
	return res, nil
}

// ack sends the ACK for a 2xx to an INVITE the emulator sent (RFC 3261
// §13.2.2.4): in the dialog, same CSeq number, a new branch.
func (e *Emulator) ack(d *dialog, inviteCSeq uint32) error {
	e.mu.Lock()
	req := d.newRequest(sip.ACK, e.opts.UserAgent)
	d.localCSeq-- // ACK reuses the INVITE's number
	e.mu.Unlock()
	req.CSeq().SeqNo = inviteCSeq
	req.SetBody(nil)
	if err := e.prepare(req, nil); err != nil {
		return err
	}
	if err := e.client.WriteRequest(req, prebuilt); err != nil {
		return fmt.Errorf("lyncemu: ACK: %w", err)
	}
	return nil
}

// inDialog sends an in-dialog request with a body (contentType "" for
// none) and returns the final answer.
func (e *Emulator) inDialog(ctx context.Context, d *dialog, method sip.RequestMethod, contentType, body string, extra ...sip.Header) (*sip.Response, error) {
	e.mu.Lock()
	if d.closed {
		e.mu.Unlock()
		return nil, ErrNoSession
	}
	req := d.newRequest(method, e.opts.UserAgent)
	e.mu.Unlock()
	if method == sip.MESSAGE {
		// SIPE and SfB put a Contact and these tags on in-dialog MESSAGE
		// (TC sample 05; SIPE sipe_im_send_message()).
		req.AppendHeader(d.user.contact())
		req.AppendHeader(sip.NewHeader("Supported", "ms-dialog-route-set-update"))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
	} else {
		req.SetBody(nil)
	}
	return e.do(ctx, req, nil)
}

// ErrNoSession is returned for a request that needs an open session.
var ErrNoSession = errors.New("lyncemu: no open session")
