package harness

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/sipua"
)

// lyncOptionTags are option tags Lync puts in Supported, Require and
// Proxy-Require (lync-dialect.md §1.5, §1.8, §2.5, §3.2).
var lyncOptionTags = []struct{ header, value string }{
	{"Proxy-Require", "ms-benotify"},
	{"Require", "com.microsoft.rtc-multiparty"},
	{"Require", "adhoclist, categoryList"},
	{"Supported", "ms-benotify"},
	{"Supported", "ms-piggyback-first-notify, com.microsoft.autoextend"},
	{"Supported", "ms-dialog-route-set-update, ms-embedded-first-message, ms-delayed-accept, ms-renders-isf, ms-renders-gif, ms-renders-mime-alternative"},
	{"Supported", "timer, histinfo, ms-safe-transfer, ms-sender, ms-early-media, ms-conf-invite, ms-text-format"},
}

func sanityCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func registeredUA(t *testing.T, k *Kamailio, user, transport string) *sipua.UA {
	t.Helper()
	ua := sipua.Start(t, sipua.Options{User: user, Domain: "sip.test", Proxy: k.Addr, Transport: transport})
	if err := ua.Register(sanityCtx(t)); err != nil {
		t.Fatal(err)
	}
	return ua
}

// Kamailio relays requests carrying Lync's option tags, over UDP and
// TCP, without 420 (Bad Extension / Bad Proxy Require Extension).
func TestKamailioPassesLyncOptionTags(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{})
	ctx := sanityCtx(t)
	for _, tr := range []string{"udp", "tcp"} {
		carol := registeredUA(t, k, "carol-"+tr, tr)
		dave := registeredUA(t, k, "dave-"+tr, tr)
		for i, c := range lyncOptionTags {
			body := tr + " " + strconv.Itoa(i)
			code, _, err := carol.SendMessage(ctx, dave.AOR(), "text/plain", body, sipua.WithHeader(c.header, c.value))
			if err != nil {
				t.Fatal(err)
			}
			if code != 200 {
				t.Errorf("%s %s: %s: got %d, want 200", tr, c.header, c.value, code)
				continue
			}
			m, err := dave.Wait(ctx, func(m sipua.Message) bool { return m.Body == body })
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header(c.header); got != c.value {
				t.Errorf("%s arrived as %q, want %q", c.header, got, c.value)
			}
		}
	}
}

// The test above can fail: with the sanity module's Proxy-Require check
// (512) on, as in Kamailio's default check set, Kamailio answers 420 to
// Lync's ms-benotify.
func TestKamailioProxyRequireCheckWould420(t *testing.T) {
	t.Parallel()
	o := KamailioOptions{}
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	if err := o.pickPorts(); err != nil {
		t.Fatal(err)
	}
	cfg, err := KamailioConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	const ours = `sanity_check("17895", "7")`
	if !strings.Contains(cfg, ours) {
		t.Fatalf("config has no %s: update this test with the template", ours)
	}
	cfg = strings.Replace(cfg, ours, `sanity_check("18407", "7")`, 1) // 17895 + 512
	dir := TempDir(t, "kamailio-strict")
	path, err := WriteFile(dir, "kamailio.cfg", cfg, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	k, err := launchKamailio(dir, nil, o, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop() })
	carol := registeredUA(t, k, "carol", "udp")
	dave := registeredUA(t, k, "dave", "udp")
	code, res, err := carol.SendMessage(sanityCtx(t), dave.AOR(), "text/plain", "x", sipua.WithHeader("Proxy-Require", "ms-benotify"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 420 {
		t.Fatalf("strict sanity check: got %d %v, want 420", code, res)
	}
}

func TestKamailioSharedMemory(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ mb, want int }{{0, 64}, {96, 96}} {
		k := StartKamailio(t, KamailioOptions{SharedMemMB: c.mb})
		b, err := os.ReadFile("/proc/" + strconv.Itoa(k.Proc.PID()) + "/cmdline")
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		if args := strings.Split(string(b), "\x00"); !strings.Contains(strings.Join(args, " "), "-m "+strconv.Itoa(c.want)+" ") {
			t.Errorf("SharedMemMB %d: kamailio runs as %q, want -m %d", c.mb, args, c.want)
		}
	}
}
