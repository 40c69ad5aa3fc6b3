package sipside

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// listeners are the sockets sipside serves on, bound before Run reports
// ready so that a port in use is an error of Run, not a log line.
type listeners struct {
	udp net.PacketConn
	tcp net.Listener
	tls net.Listener

	closed atomic.Bool
}

// listen binds every configured listener, or none.
func (s *Server) listen() (*listeners, error) {
	l := &listeners{}
	var err error
	if s.st.listenUDP != "" {
		if l.udp, err = net.ListenPacket("udp", s.st.listenUDP); err != nil {
			return nil, fmt.Errorf("sipside: listen udp %s: %w", s.st.listenUDP, err)
		}
	}
	if s.st.listenTCP != "" {
		if l.tcp, err = net.Listen("tcp", s.st.listenTCP); err != nil {
			l.close()
			return nil, fmt.Errorf("sipside: listen tcp %s: %w", s.st.listenTCP, err)
		}
	}
	if s.st.listenTLS != "" {
		raw, err := net.Listen("tcp", s.st.listenTLS)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("sipside: listen tls %s: %w", s.st.listenTLS, err)
		}
		l.tls = tls.NewListener(raw, s.st.tlsConfig)
	}
	return l, nil
}

// serve hands each listener to sipgo; a listener that stops before close
// reports on errc.
func (l *listeners) serve(srv *sipgo.Server, errc chan<- error) {
	run := func(name string, f func() error) {
		go func() {
			err := f()
			if l.closed.Load() {
				return
			}
			if err == nil {
				err = errors.New("stopped")
			}
			errc <- fmt.Errorf("%s listener: %w", name, err)
		}()
	}
	if l.udp != nil {
		run("udp", func() error { return srv.ServeUDP(l.udp) })
	}
	if l.tcp != nil {
		run("tcp", func() error { return srv.ServeTCP(l.tcp) })
	}
	if l.tls != nil {
		run("tls", func() error { return srv.ServeTLS(l.tls) })
	}
}

func (l *listeners) close() {
	l.closed.Store(true)
	for _, c := range []interface{ Close() error }{l.udp, l.tcp, l.tls} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// udpLocal is the address outbound UDP requests are sent from: the UDP
// listener's, when it is bound to a definite IP. The zero Addr lets sipgo
// pick an ephemeral socket.
func (l *listeners) udpLocal() sip.Addr {
	if l.udp == nil {
		return sip.Addr{}
	}
	ua, ok := l.udp.LocalAddr().(*net.UDPAddr)
	if !ok || ua.IP.IsUnspecified() {
		return sip.Addr{}
	}
	return sip.Addr{IP: ua.IP, Port: ua.Port, Hostname: ua.IP.String()}
}

// addr returns the bound address of one transport ("udp", "tcp", "tls").
func (l *listeners) addr(network string) net.Addr {
	switch {
	case network == "udp" && l.udp != nil:
		return l.udp.LocalAddr()
	case network == "tcp" && l.tcp != nil:
		return l.tcp.Addr()
	case network == "tls" && l.tls != nil:
		return l.tls.Addr()
	}
	return nil
}
