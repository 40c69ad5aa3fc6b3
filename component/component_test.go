package component

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/xmppclient"
	"github.com/parleygw/parley/shared/address"
	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// TestWithProsody runs the message, disco and ping flows against one real
// Prosody: alice is a real XMPP client (slixmpp), probe.test sends raw
// stanzas, and the bus is memstore.
func TestWithProsody(t *testing.T) {
	e := newEnv(t, envOptions{maxStanza: 16 << 10})
	e.start()
	e.consumeToSIP()
	alice := e.client("alice")
	probe := startProbe(t, e.prosody.ComponentAddr)
	aliceFull := address.Address{User: "alice", Domain: xmppDomain, Resource: "test"}
	bob := address.Address{User: "bob", Domain: sipDomain}

	// expectToSIP checks the next event for the SIP side.
	expectToSIP := func(t *testing.T, want model.Message) store.Event {
		t.Helper()
		ev, ok := e.nextToSIP(5 * time.Second)
		if !ok {
			t.Fatalf("no event on %s for message %q", model.TopicToSIP, want.ID)
		}
		if ev.Type != model.EventMessage {
			t.Errorf("event type %q, want %q", ev.Type, model.EventMessage)
		}
		var got model.Message
		if err := json.Unmarshal(ev.Data, &got); err != nil {
			t.Fatal(err)
		}
		want.ConvID = model.ConversationID(want.From, want.To)
		if want.Lang == "" {
			want.Lang = "en" // Prosody stamps its default xml:lang on stanzas without one
		}
		if got != want {
			t.Errorf("message on the bus:\n got %+v\nwant %+v", got, want)
		}
		if ev.Key != want.ConvID {
			t.Errorf("event key %q, want the conversation id %q", ev.Key, want.ConvID)
		}
		return ev
	}
	expectError := func(t *testing.T, c *xmppclient.Client, id, from, cond, typ string) xmppclient.Message {
		t.Helper()
		m, err := c.Wait(ctxT(t, 5*time.Second), func(m xmppclient.Message) bool { return m.ID == id && m.Type == "error" })
		if err != nil {
			t.Fatal(err)
		}
		if m.Error == nil || m.Error.Condition != cond || m.Error.Type != typ {
			t.Errorf("error for %s: %+v, want %s/%s\n%s", id, m.Error, cond, typ, m.XML)
		}
		if m.From != from {
			t.Errorf("error for %s comes from %q, want %q", id, m.From, from)
		}
		return m
	}

	t.Run("xmpp to sip", func(t *testing.T) {
		body := "Grüße, Bob! 👋🏽 日本語 — ça va?"
		if err := alice.Send("bob@sip.test", "m1", body); err != nil {
			t.Fatal(err)
		}
		ev := expectToSIP(t, model.Message{ID: "m1", From: aliceFull, To: bob, Type: model.Chat, Body: body})
		sum := sha256.Sum256([]byte("alice@xmpp.test/test\x00m1"))
		if want := "x:" + hex.EncodeToString(sum[:])[:32]; ev.ID != want {
			t.Errorf("event id %q, want %q", ev.ID, want)
		}
	})

	t.Run("normal, untyped, subject, thread, lang", func(t *testing.T) {
		if err := alice.SendType("bob@sip.test", "m2", "normal", "n"); err != nil {
			t.Fatal(err)
		}
		expectToSIP(t, model.Message{ID: "m2", From: aliceFull, To: bob, Type: model.Normal, Body: "n"})
		raw := `<message to='bob@sip.test' id='m3' xml:lang='de'><subject>Betreff</subject><body>Hallo</body><thread>th-1</thread></message>`
		if err := alice.SendRaw(raw); err != nil {
			t.Fatal(err)
		}
		expectToSIP(t, model.Message{ID: "m3", From: aliceFull, To: bob, Type: model.Normal, Body: "Hallo",
			Subject: "Betreff", Thread: "th-1", Lang: "de"})
	})

	t.Run("gateway domain", func(t *testing.T) {
		if err := alice.Send(`bob\40fabrikam.com@gw.test`, "m4", "via gw"); err != nil {
			t.Fatal(err)
		}
		expectToSIP(t, model.Message{ID: "m4", From: aliceFull, To: address.Address{User: "bob", Domain: "fabrikam.com"},
			Type: model.Chat, Body: "via gw"})
	})

	t.Run("unmappable recipient", func(t *testing.T) {
		if err := alice.Send("bob@gw.test", "u1", "no @ in the gateway localpart"); err != nil {
			t.Fatal(err)
		}
		expectError(t, alice, "u1", "bob@gw.test", model.JIDMalformed, "modify")
		if err := alice.Send("sip.test", "u2", "to the domain itself"); err != nil {
			t.Fatal(err)
		}
		expectError(t, alice, "u2", "sip.test", model.ItemNotFound, "cancel")
	})

	t.Run("message without body is not translated", func(t *testing.T) {
		if err := alice.SendRaw(`<message to='bob@sip.test' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`); err != nil {
			t.Fatal(err)
		}
		if err := alice.Send("bob@sip.test", "m5", "after the chat state"); err != nil {
			t.Fatal(err)
		}
		// Same stream, in order: had the chat state been published, it
		// would come first.
		expectToSIP(t, model.Message{ID: "m5", From: aliceFull, To: bob, Type: model.Chat, Body: "after the chat state"})
	})

	t.Run("bus publish failure", func(t *testing.T) {
		e.bus.failToSIP.Store(true)
		defer e.bus.failToSIP.Store(false)
		if err := alice.Send("bob@sip.test", "pf1", "lost?"); err != nil {
			t.Fatal(err)
		}
		expectError(t, alice, "pf1", "bob@sip.test", model.RemoteServerTimeout, "wait")
		if n := value(e.comp.metrics.publishFailures.WithLabelValues(model.EventMessage)); n != 1 {
			t.Errorf("publish failures = %v, want 1", n)
		}
	})

	t.Run("sip to xmpp", func(t *testing.T) {
		body := "héllo 🌍 from SIP"
		e.publish("ev-o1", model.EventMessage, model.Message{ID: "o1", From: bob, To: address.Address{User: "alice", Domain: xmppDomain},
			Type: model.Chat, Body: body, Thread: "th-2"})
		m, err := alice.WaitBody(ctxT(t, 5*time.Second), body)
		if err != nil {
			t.Fatal(err)
		}
		if m.From != "bob@sip.test" || m.To != "alice@xmpp.test" || m.ID != "o1" || m.Type != "chat" || m.Thread != "th-2" {
			t.Errorf("alice got %+v", m)
		}
	})

	t.Run("sip to xmpp through the gateway domain", func(t *testing.T) {
		e.publish("ev-o2", model.EventMessage, model.Message{ID: "o2", From: address.Address{User: "dave", Domain: "fabrikam.com"},
			To: aliceFull, Type: model.Normal, Body: "gw out"})
		m, err := alice.WaitBody(ctxT(t, 5*time.Second), "gw out")
		if err != nil {
			t.Fatal(err)
		}
		if m.From != `dave\40fabrikam.com@gw.test` || m.To != "alice@xmpp.test/test" || m.ID != "o2" || m.Type != "normal" {
			t.Errorf("alice got %+v", m)
		}
	})

	t.Run("message error", func(t *testing.T) {
		if err := alice.Send("bob@sip.test", "e1", "will be refused"); err != nil {
			t.Fatal(err)
		}
		expectToSIP(t, model.Message{ID: "e1", From: aliceFull, To: bob, Type: model.Chat, Body: "will be refused"})
		e.publish("ev-e1", model.EventMessageError, model.MessageError{ID: "e1", From: bob, To: aliceFull,
			Err: model.FromSIP(404, "Not Found")})
		m := expectError(t, alice, "e1", "bob@sip.test", model.ItemNotFound, "cancel")
		if m.Error.Text != "Not Found" {
			t.Errorf("error text %q, want the SIP reason", m.Error.Text)
		}
	})

	t.Run("delivery barrier", func(t *testing.T) {
		results := e.results("barrier-results")
		e.publish("ev-b1", model.EventMessage, model.Message{ID: "b1", From: bob, To: address.Address{User: "nobody", Domain: xmppDomain},
			Type: model.Chat, Body: "to nobody", ReplyTo: "barrier-results"})
		e.publish("ev-b2", model.EventMessage, model.Message{ID: "b2", From: bob, To: address.Address{User: "alice", Domain: xmppDomain},
			Type: model.Chat, Body: "to alice", ReplyTo: "barrier-results"})
		got := map[string]model.Result{}
		for len(got) < 2 {
			select {
			case r := <-results:
				got[r.ID] = r
			case <-time.After(5 * time.Second):
				t.Fatalf("results: got %v, want b1 and b2", got)
			}
		}
		if r := got["b1"]; r.Err == nil || r.Err.Condition != model.ServiceUnavailable || r.Err.SIPStatus != 503 || r.EventID != "ev-b1" {
			t.Errorf("result for a message to an unknown user: %+v (err %+v)", r, r.Err)
		}
		if r := got["b2"]; r.Err != nil || r.EventID != "ev-b2" {
			t.Errorf("result for a message to alice: %+v (err %+v)", r, r.Err)
		}
		if _, err := alice.WaitBody(ctxT(t, 5*time.Second), "to alice"); err != nil {
			t.Fatal(err)
		}
		if n := value(e.comp.metrics.bounces.WithLabelValues("barrier")); n != 1 {
			t.Errorf("bounces matched at the barrier = %v, want 1", n)
		}
	})

	t.Run("undeliverable events are answered, not retried", func(t *testing.T) {
		results := e.results("reject-results")
		retries := value(e.comp.metrics.deliveries.WithLabelValues(model.EventMessage, "retry"))
		for _, tc := range []struct {
			id   string
			m    model.Message
			cond string
		}{
			{"loop", model.Message{From: bob, To: address.Address{User: "carol", Domain: sipDomain}, Body: "SIP to SIP"}, model.ItemNotFound},
			{"big", model.Message{From: bob, To: address.Address{User: "alice", Domain: xmppDomain}, Body: strings.Repeat("x", 32<<10)}, model.PolicyViolation},
			{"unmapped", model.Message{From: address.Address{User: "bob", Domain: "fabrikam.com"}, To: address.Address{User: "alice", Domain: gwDomain}, Body: "to the gateway domain"}, model.ItemNotFound},
		} {
			tc.m.ID, tc.m.ReplyTo, tc.m.Type = tc.id, "reject-results", model.Chat
			e.publish("ev-"+tc.id, model.EventMessage, tc.m)
			select {
			case r := <-results:
				if r.ID != tc.id || r.Err == nil || r.Err.Condition != tc.cond {
					t.Errorf("%s: result %+v (err %+v), want %s", tc.id, r, r.Err, tc.cond)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no result", tc.id)
			}
		}
		if n := value(e.comp.metrics.deliveries.WithLabelValues(model.EventMessage, "retry")) - retries; n != 0 {
			t.Errorf("%v retries for events that can never be delivered", n)
		}
		// None of them reached alice.
		e.publish("ev-marker", model.EventMessage, model.Message{ID: "marker", From: bob, To: address.Address{User: "alice", Domain: xmppDomain}, Body: "marker"})
		if _, err := alice.WaitBody(ctxT(t, 5*time.Second), "marker"); err != nil {
			t.Fatal(err)
		}
		for _, m := range alice.All() {
			if m.ID == "big" || m.ID == "loop" || m.ID == "unmapped" {
				t.Errorf("alice got %s", m.ID)
			}
		}
	})

	t.Run("delivery barrier batches a burst", func(t *testing.T) {
		const n = 200
		results := e.results("burst-results")
		pingsBefore := value(e.comp.metrics.stanzas.WithLabelValues("out", "iq_get"))
		start := time.Now()
		for i := range n {
			to := "alice"
			if i%10 == 0 {
				to = "nobody"
			}
			// Distinct keys: the bus runs them in parallel.
			data, _ := json.Marshal(model.Message{ID: fmt.Sprintf("burst-%d", i), ConvID: fmt.Sprintf("c%d", i), From: bob,
				To: address.Address{User: to, Domain: xmppDomain}, Type: model.Chat, Body: fmt.Sprintf("burst %d", i), ReplyTo: "burst-results"})
			if err := e.mem.Publish(ctxT(t, time.Second), model.TopicToXMPP, store.Event{ID: fmt.Sprintf("ev-burst-%d", i), Key: fmt.Sprintf("c%d", i), Type: model.EventMessage, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		bounced := 0
		for i := 0; i < n; i++ {
			select {
			case r := <-results:
				var k int
				fmt.Sscanf(r.ID, "burst-%d", &k)
				if wantErr := k%10 == 0; (r.Err != nil) != wantErr {
					t.Errorf("result %s: err %+v, want error: %v", r.ID, r.Err, wantErr)
				}
				if r.Err != nil {
					bounced++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d of %d results", i, n)
			}
		}
		elapsed := time.Since(start)
		pings := value(e.comp.metrics.stanzas.WithLabelValues("out", "iq_get")) - pingsBefore
		t.Logf("%d messages with ReplyTo (%d bounced): all verdicts in %v, %v barrier pings", n, bounced, elapsed.Round(time.Millisecond), pings)
		if pings >= n/2 {
			t.Errorf("%v barrier pings for %d messages: not batched", pings, n)
		}
	})

	t.Run("disco", func(t *testing.T) {
		probe.send(`<iq type='get' id='d1' from='probe.test' to='sip.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		res, err := probe.wait(5*time.Second, `id="d1"`)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`type="result"`, `from="sip.test"`, `to="probe.test"`, `category="gateway"`, `type="simple"`,
			`name="Parley SIP gateway"`, `var="http://jabber.org/protocol/disco#info"`, `var="http://jabber.org/protocol/disco#items"`,
			`var="urn:xmpp:ping"`, `var="jid\20escaping"`} {
			if !strings.Contains(res, want) {
				t.Errorf("disco#info of the domain lacks %s:\n%s", want, res)
			}
		}
		for _, to := range []string{"bob@sip.test", "bob@sip.test/desk", `bob\40fabrikam.com@gw.test`} {
			probe.send(`<iq type='get' id='d2' from='probe.test' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info' node='n#1'/></iq>`)
			res, err = probe.wait(5*time.Second, `id="d2"`)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`type="result"`, `category="client"`, `type="pc"`, `node="n#1"`, `var="urn:xmpp:ping"`} {
				if !strings.Contains(res, want) {
					t.Errorf("disco#info of %s lacks %s:\n%s", to, want, res)
				}
			}
			if strings.Contains(res, "receipts") || strings.Contains(res, "chatstates") || strings.Contains(res, "escaping") {
				t.Errorf("disco#info of %s advertises what we do not translate:\n%s", to, res)
			}
		}
		probe.send(`<iq type='get' id='d3' from='probe.test' to='sip.test'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
		res, err = probe.wait(5*time.Second, `id="d3"`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res, `type="result"`) || strings.Contains(res, "<item") {
			t.Errorf("disco#items of the domain is not an empty result:\n%s", res)
		}
		probe.send(`<iq type='get' id='d4' from='probe.test' to='bob@gw.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		res, err = probe.wait(5*time.Second, `id="d4"`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res, `type="error"`) || !strings.Contains(res, "item-not-found") {
			t.Errorf("disco#info of an unmappable JID:\n%s", res)
		}
	})

	t.Run("ping and IQ errors", func(t *testing.T) {
		for i, to := range []string{"sip.test", "bob@sip.test", "bob@sip.test/desk", "gw.test"} {
			id := fmt.Sprintf("p%d", i)
			probe.send(`<iq type='get' id='` + id + `' from='probe.test' to='` + to + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
			res, err := probe.wait(5*time.Second, `id="`+id+`"`)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res, `type="result"`) || !strings.Contains(res, `from="`+to+`"`) || !strings.Contains(res, `to="probe.test"`) {
				t.Errorf("ping to %s:\n%s", to, res)
			}
		}
		probe.send(`<iq type='get' id='q1' from='probe.test' to='bob@sip.test'><query xmlns='jabber:iq:version'/></iq>`)
		res, err := probe.wait(5*time.Second, `id="q1"`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res, `type="error"`) || !strings.Contains(res, "service-unavailable") {
			t.Errorf("unknown IQ namespace:\n%s", res)
		}
		// Errors are never answered with errors (RFC 6120 §8.3.1).
		late := value(e.comp.metrics.bounces.WithLabelValues("late"))
		probe.send(`<iq type='error' id='q2' from='probe.test' to='bob@sip.test'><error type='cancel'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
		probe.send(`<message type='error' id='q3' from='probe.test' to='bob@sip.test'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
		probe.send(`<iq type='get' id='q4' from='probe.test' to='sip.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
		if _, err := probe.wait(5*time.Second, `id="q4"`); err != nil {
			t.Fatal(err)
		}
		if n := probe.count(`id="q2"`) + probe.count(`id="q3"`); n != 0 {
			t.Errorf("an error stanza was answered (%d replies)", n)
		}
		if n := value(e.comp.metrics.bounces.WithLabelValues("late")) - late; n != 1 {
			t.Errorf("late bounces counted: %v, want 1", n)
		}
	})

	t.Run("oversize stanza", func(t *testing.T) {
		big := strings.Repeat("0123456789", 4<<10) // 40 KiB > max_stanza_bytes (16 KiB)
		probe.send(`<message type='chat' id='big1' from='probe.test' to='bob@sip.test'><body>` + big + `</body></message>`)
		res, err := probe.wait(5*time.Second, `id="big1"`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res, `type="error"`) || !strings.Contains(res, "policy-violation") {
			t.Errorf("oversize message:\n%s", res)
		}
		// The stream stays up and in step.
		probe.send(`<message type='chat' id='small1' from='probe.test' to='bob@sip.test'><body>small</body></message>`)
		expectToSIP(t, model.Message{ID: "small1", From: address.Address{Domain: probeDomain}, To: bob, Type: model.Chat, Body: "small"})
		if n := value(e.comp.metrics.oversize); n != 1 {
			t.Errorf("oversize counter = %v, want 1", n)
		}
	})

	// Prosody closes a component stream that sends a stanza without a
	// valid 'from' or 'to'; nothing above may have cost a reconnect.
	for _, d := range []string{sipDomain, gwDomain} {
		if n := value(e.comp.metrics.reconnects.WithLabelValues(d)); n != 0 {
			t.Errorf("%s reconnected %v times", d, n)
		}
	}
	if err := e.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if e.comp.Ready() {
		t.Error("Ready after Run returned")
	}
}
