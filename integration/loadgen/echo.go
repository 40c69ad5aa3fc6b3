package loadgen

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// EchoConfig describes an echo component.
type EchoConfig struct {
	Addr   string // the XMPP server's component port, IP literal and port
	Domain string // component domain, e.g. "echo.xmpp.test"
	Secret string
	Log    *slog.Logger
}

// Echo is a trivial XEP-0114 component: every message it receives goes
// back to its sender with from and to swapped. Through the same XMPP
// server it is the ceiling any component (Parley included) can reach.
type Echo struct {
	s   *stream
	log *slog.Logger

	echoed atomic.Int64
	done   chan struct{}
	err    error
}

// StartEcho connects, completes the handshake and starts echoing.
func StartEcho(ctx context.Context, cfg EchoConfig) (*Echo, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("echo component: %w", err)
	}
	e := &Echo{s: newStream(conn), log: cfg.Log, done: make(chan struct{})}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := e.handshake(cfg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("echo component %s: %w", cfg.Domain, err)
	}
	conn.SetDeadline(time.Time{})
	go e.serve()
	return e, nil
}

func (e *Echo) handshake(cfg EchoConfig) error {
	bw := e.s.bw
	bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='" + nsStream + "' to='")
	writeEscaped(bw, cfg.Domain)
	bw.WriteString("'>")
	if err := bw.Flush(); err != nil {
		return err
	}
	hdr, header, err := e.s.readTop()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if !header || hdr.attr("id") == "" {
		return errors.New("no stream id in the server's header")
	}
	sum := sha1.Sum([]byte(hdr.attr("id") + cfg.Secret))
	bw.WriteString("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
	if err := bw.Flush(); err != nil {
		return err
	}
	n, _, err := e.s.readTop()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if n.local != "handshake" {
		return fmt.Errorf("handshake: got <%s>", n.local)
	}
	return nil
}

// Echoed counts messages sent back.
func (e *Echo) Echoed() int64 { return e.echoed.Load() }

// Done is closed when the component's stream ended.
func (e *Echo) Done() <-chan struct{} { return e.done }

// Err is why the stream ended (after Done).
func (e *Echo) Err() error { return e.err }

func (e *Echo) serve() {
	defer close(e.done)
	bw := e.s.bw
	for {
		n, _, err := e.s.readTop()
		if err != nil {
			e.err = err
			bw.Flush()
			return
		}
		if n.local == "message" && n.attr("type") != "error" {
			bw.WriteString("<message from='")
			writeEscaped(bw, n.attr("to"))
			bw.WriteString("' to='")
			writeEscaped(bw, n.attr("from"))
			bw.WriteString("' type='chat' id='")
			writeEscaped(bw, n.attr("id"))
			bw.WriteString("'>")
			if b := n.child("body"); b != nil {
				bw.WriteString("<body>")
				writeEscaped(bw, string(b.text))
				bw.WriteString("</body>")
			}
			bw.WriteString("</message>")
			e.echoed.Add(1)
		}
		// Flush once nothing more is waiting: one write per batch of
		// stanzas that arrived together.
		if e.s.br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				e.err = err
				return
			}
		}
	}
}

// Close ends the stream and the connection.
func (e *Echo) Close() error {
	e.s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	// serve owns the writer; closing the connection ends it.
	err := e.s.conn.Close()
	<-e.done
	return err
}
