package component

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// runFatal runs the component and expects Run to end by itself, quickly,
// with a *ConfigError for condition.
func runFatal(t *testing.T, e *env, condition, hint string) {
	t.Helper()
	start := time.Now()
	e.run()
	var err error
	select {
	case err = <-e.done:
		e.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatalf("Run still running after 5s; want a %s configuration error", condition)
	}
	t.Logf("Run returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Condition != condition {
		t.Fatalf("Run returned %v, want a *ConfigError with condition %s", err, condition)
	}
	if !strings.Contains(err.Error(), hint) {
		t.Errorf("error %q does not say %q", err, hint)
	}
	if strings.Contains(e.logs.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Error("the secret appears in the logs or the error")
	}
	if e.comp.Ready() {
		t.Error("Ready after a fatal error")
	}
}

func TestWrongSecretIsFatal(t *testing.T) {
	e := newEnv(t, envOptions{secret: "not-the-" + secret})
	runFatal(t, e, "not-authorized", "component.secret_file")
	// One attempt per domain, no reconnect loop.
	if n := strings.Count(e.prosody.Output(), "Component authentication failed"); n > 2 {
		t.Errorf("Prosody saw %d failed handshakes; want at most one per domain", n)
	}
	if n := value(e.comp.metrics.reconnects.WithLabelValues(sipDomain)); n != 0 {
		t.Errorf("reconnects = %v after a wrong secret", n)
	}
}

func TestUnknownHostIsFatal(t *testing.T) {
	e := newEnv(t, envOptions{domains: []string{"nowhere.test"}, gateway: "-"})
	runFatal(t, e, "host-unknown", `Component "nowhere.test"`)
}

func TestConflictIsFatal(t *testing.T) {
	e := newEnv(t, envOptions{domains: []string{probeDomain}, gateway: "-", secret: probeSecret})
	startProbe(t, e.prosody.ComponentAddr) // probe.test is taken
	runFatal(t, e, "conflict", "another component")
}

// TestReconnectAfterRestart restarts Prosody under a running component:
// the streams come back, an event published while they were down is
// delivered once they are up (the bus redelivers it), and a message sent
// afterwards reaches a client.
func TestReconnectAfterRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	results := e.results("restart-results")
	bob := address.Address{User: "bob", Domain: sipDomain}

	st := time.Now()
	if err := e.prosody.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("prosody stopped in %v", time.Since(st))
	e.waitReady(false)
	// Accepted while the stream is down: not lost.
	e.publish("ev-down", model.EventMessage, model.Message{ID: "down1", From: bob,
		To: address.Address{User: "carol", Domain: xmppDomain}, Type: model.Chat, Body: "while down", ReplyTo: "restart-results"})
	time.Sleep(300 * time.Millisecond) // let the consumer fail on it at least once
	st = time.Now()
	if err := e.prosody.Restart(); err != nil {
		t.Fatal(err)
	}
	e.waitReady(true)
	t.Logf("prosody restarted and streams up in %v", time.Since(st))
	select {
	case r := <-results:
		// carol is offline and Prosody keeps no offline messages: a bounce.
		if r.ID != "down1" || r.Err == nil || r.Err.Condition != model.ServiceUnavailable {
			t.Errorf("result for the message published while down: %+v (err %+v)", r, r.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message published while the stream was down was never delivered")
	}
	if n := value(e.comp.metrics.reconnects.WithLabelValues(sipDomain)); n < 1 {
		t.Errorf("reconnects = %v", n)
	}
	if n := value(e.comp.metrics.deliveries.WithLabelValues(model.EventMessage, "retry")); n < 1 {
		t.Errorf("retried deliveries = %v; the event should have failed while the stream was down", n)
	}

	alice := e.client("alice")
	e.publish("ev-after", model.EventMessage, model.Message{ID: "after1", From: bob,
		To: address.Address{User: "alice", Domain: xmppDomain}, Type: model.Chat, Body: "after the restart"})
	m, err := alice.WaitBody(ctxT(t, 5*time.Second), "after the restart")
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "bob@sip.test" || m.ID != "after1" {
		t.Errorf("alice got %+v", m)
	}
	e.consumeToSIP()
	if err := alice.Send("bob@sip.test", "in-after", "inbound after the restart"); err != nil {
		t.Fatal(err)
	}
	if ev, ok := e.nextToSIP(5 * time.Second); !ok || !strings.Contains(string(ev.Data), "inbound after the restart") {
		t.Errorf("inbound message after the restart: %v %s", ok, ev.Data)
	}
}

// TestKeepaliveDropsDeadStream freezes Prosody (SIGSTOP): the TCP
// connection stays open but nothing answers, so only the keepalive can
// notice. Two missed pings drop the stream; after SIGCONT it comes back.
func TestKeepaliveDropsDeadStream(t *testing.T) {
	const interval = 200 * time.Millisecond
	e := newEnv(t, envOptions{pingInterval: interval})
	e.start()
	// Keepalive pings go to the domain itself and come back through Prosody.
	pings := func() float64 { return value(e.comp.metrics.stanzas.WithLabelValues("in", "iq_get")) }
	before := pings()
	time.Sleep(5 * interval)
	if n := pings() - before; n < 3 {
		t.Fatalf("%v keepalive pings came back in %v, want at least 3", n, 5*interval)
	}

	e.prosody.Proc.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			e.prosody.Proc.Signal(syscall.SIGCONT)
			resumed = true
		}
	}
	defer resume()
	deadline := time.Now().Add(5 * time.Second)
	for e.comp.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("stream still up 5s after the server froze")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(stopped)
	t.Logf("dead stream dropped %v after the server froze (interval %v)", took.Round(time.Millisecond), interval)
	// Two pings must time out; the first may have been sent just before
	// the freeze, so allow for part of one interval.
	if took < 3*interval/2 {
		t.Errorf("dropped after %v, before two pings could be missed", took)
	}
	if !strings.Contains(e.logs.String(), "two keepalive pings unanswered") {
		t.Error("no log line about the missed pings")
	}
	resume()
	e.waitReady(true)
}

// TestDrain: a delivery in flight finishes although the consumer's context
// has ended; after cancel, Run closes the streams with </stream:stream>
// and returns nil.
func TestDrain(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	alice := e.client("alice")
	results := e.results("drain-results")

	// What the bus hands a handler while Consume is being stopped.
	stopping, cancel := context.WithCancel(context.Background())
	cancel()
	data, _ := json.Marshal(model.Message{ID: "d1", From: address.Address{User: "bob", Domain: sipDomain},
		To: address.Address{User: "alice", Domain: xmppDomain}, Type: model.Chat, Body: "in flight", ReplyTo: "drain-results"})
	if err := e.comp.handleEvent(stopping, store.Event{ID: "ev-d1", Type: model.EventMessage, Data: data}); err != nil {
		t.Fatalf("delivery with the consumer's context ended: %v", err)
	}
	if _, err := alice.WaitBody(ctxT(t, 5*time.Second), "in flight"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if r.ID != "d1" || r.Err != nil {
			t.Errorf("result %+v (err %+v)", r, r.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result for the delivery in flight")
	}

	start := time.Now()
	if err := e.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > closeGrace+time.Second {
		t.Errorf("drain took %v", d)
	}
	if e.comp.Ready() {
		t.Error("Ready after Run returned")
	}
	if strings.Contains(e.prosody.Output(), "<stream:error>") {
		t.Errorf("Prosody closed a stream with an error:\n%s", e.prosody.Output())
	}
	if n := value(e.comp.metrics.up.WithLabelValues(sipDomain)); n != 0 {
		t.Errorf("stream_up = %v after Run returned", n)
	}
}
