// Package integration holds Parley's end-to-end tests: real Prosody,
// Kamailio and Redis on loopback, real XMPP clients (slixmpp) and SIP user
// agents (sipgo), and Parley built from this tree and run as an operator
// runs it.
package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/sipua"
	"github.com/parleygw/parley/integration/xmppclient"
)

const secret = "component-secret-for-tests"

// topology is one federation: xmpp.test on Prosody, sip.test on Kamailio,
// Parley between them, in memory ("all") or split mode (Redis).
type topology struct {
	t        *testing.T
	prosody  *harness.Prosody
	kamailio *harness.Kamailio
	redis    *harness.Redis
	// parleys: "all" in memory mode; "component" and "sip" in split mode.
	parleys map[string]*harness.Parley
	sipAddr string
}

func startTopology(t *testing.T, split bool) *topology {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs real servers")
	}
	bin := harness.BuildParley(t)
	top := &topology{t: t, parleys: map[string]*harness.Parley{}}
	top.prosody = harness.StartProsody(t, harness.ProsodyOptions{
		Domain:     "xmpp.test",
		Components: map[string]string{"sip.test": secret, "lync.test": secret},
		Users:      map[string]string{"alice": "alice", "bob": "bob"},
	})
	top.sipAddr = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	top.kamailio = harness.StartKamailio(t, harness.KamailioOptions{
		SIPDomain: "sip.test", Aliases: []string{"lync.test"},
		XMPPDomains: []string{"xmpp.test"}, ParleyAddr: top.sipAddr,
	})
	base := harness.ParleyOptions{
		Bin:              bin,
		ComponentServer:  top.prosody.ComponentAddr,
		Secret:           secret,
		ComponentDomains: []string{"sip.test", "lync.test"},
		SIPListen:        top.sipAddr,
		SIPDomains:       []string{"xmpp.test"},
		OutboundProxy:    top.kamailio.Addr,
		Trusted:          []string{"127.0.0.1"},
	}
	if !split {
		o := base
		o.Role = "all"
		o.MetricsListen = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
		top.parleys["all"] = harness.StartParley(t, o)
		return top
	}
	top.redis = harness.StartRedis(t, true)
	for _, role := range []string{"component", "sip"} {
		o := base
		o.Role = role
		o.RedisURL = top.redis.URL()
		o.Instance = "test-" + role
		o.MetricsListen = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
		top.parleys[role] = harness.StartParley(t, o)
	}
	return top
}

// xmppUser logs a real XMPP client in as user@xmpp.test.
func (top *topology) xmppUser(user string) *xmppclient.Client {
	return xmppclient.Start(top.t, xmppclient.Options{
		JID: user + "@xmpp.test/test", Password: user, Addr: top.prosody.C2SAddr,
	})
}

// sipUser registers a real SIP user agent as user@sip.test at Kamailio.
func (top *topology) sipUser(user, transport string) *sipua.UA {
	top.t.Helper()
	ua := sipua.Start(top.t, sipua.Options{User: user, Domain: "sip.test", Proxy: top.kamailio.Addr, Transport: transport})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ua.Register(ctx); err != nil {
		top.t.Fatalf("register %s: %v", user, err)
	}
	return ua
}

func (top *topology) parley(role string) *harness.Parley {
	if p, ok := top.parleys[role]; ok {
		return p
	}
	return top.parleys["all"]
}

func wait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
