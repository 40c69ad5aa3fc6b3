// Command demo runs a working local federation in the foreground: Prosody
// (xmpp.test), Kamailio (sip.test) and Parley between them, on loopback with
// fixed, documented ports, so anyone can try Parley with real clients.
// Ctrl-C stops everything.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleygw/parley/integration/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "parley-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logw := io.Writer(nil)
	if os.Getenv("PARLEY_DEMO_VERBOSE") != "" {
		logw = os.Stderr
	}

	fmt.Println("Building parley ...")
	if err := os.MkdirAll(dir+"/bin", 0o755); err != nil {
		return err
	}
	bin, err := harness.Build(dir + "/bin")
	if err != nil {
		return err
	}
	const secret = "parley-demo-secret"

	prosody, err := harness.LaunchProsody(dir+"/prosody", logw, harness.ProsodyOptions{
		Domain: "xmpp.test", C2SPort: 5222, ComponentPort: 5347,
		Components: map[string]string{"sip.test": secret, "lync.test": secret},
		Users:      map[string]string{"alice": "alice", "bob": "bob"},
		Offline:    true,
	})
	if err != nil {
		return fmt.Errorf("prosody: %w (is port 5222 or 5347 in use?)", err)
	}
	defer prosody.Stop()

	kamailio, err := harness.LaunchKamailio(dir+"/kamailio", logw, harness.KamailioOptions{
		Port: 5060, SIPDomain: "sip.test", Aliases: []string{"lync.test"},
		XMPPDomains: []string{"xmpp.test"}, ParleyAddr: "127.0.0.1:5080",
	})
	if err != nil {
		return fmt.Errorf("kamailio: %w (is port 5060 in use?)", err)
	}
	defer kamailio.Stop()

	parley, err := harness.LaunchParley(dir+"/parley", os.Stderr, harness.ParleyOptions{
		Bin: bin, Role: "all", Name: "parley",
		ComponentServer: prosody.ComponentAddr, Secret: secret,
		ComponentDomains: []string{"sip.test", "lync.test"},
		SIPListen:        "127.0.0.1:5080", SIPDomains: []string{"xmpp.test"},
		OutboundProxy: kamailio.Addr, Trusted: []string{"127.0.0.1"},
		MetricsListen: "127.0.0.1:9090",
	})
	if err != nil {
		return fmt.Errorf("parley: %w", err)
	}
	defer parley.Proc.Stop(10 * time.Second)

	fmt.Print(`
Parley demo is running (Ctrl-C stops it).

  XMPP   Prosody  127.0.0.1:5222  domain xmpp.test   users alice/alice, bob/bob (plain auth, loopback only)
  SIP    Kamailio 127.0.0.1:5060  domain sip.test    registrar, no auth
  Parley component on 127.0.0.1:5347 (sip.test, lync.test), SIP side on 127.0.0.1:5080 (xmpp.test)
  Metrics http://127.0.0.1:9090/metrics   health http://127.0.0.1:9090/healthz

Try it:
  1. XMPP client: log in as alice@xmpp.test (password alice, server 127.0.0.1:5222,
     allow plain authentication), and write to carol@sip.test.
  2. SIP client: register sip:carol@sip.test at 127.0.0.1:5060 (no password) and write to
     sip:alice@xmpp.test. Or, without a SIP client:
       sipp -sf integration/sipp/message.xml 127.0.0.1:5060 -s alice -i 127.0.0.1 -p 5070 -m 1 -nostdin
Parley's log follows.
`)
	select {
	case <-ctx.Done():
	case <-parley.Proc.Done():
		return fmt.Errorf("parley exited:\n%s", parley.Proc.Output())
	case <-prosody.Proc.Done():
		return fmt.Errorf("prosody exited:\n%s", prosody.Proc.Output())
	case <-kamailio.Proc.Done():
		return fmt.Errorf("kamailio exited:\n%s", kamailio.Proc.Output())
	}
	fmt.Println("\nStopping ...")
	return nil
}
