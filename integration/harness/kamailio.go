package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// KamailioOptions configures a Kamailio SIP proxy/registrar on loopback.
type KamailioOptions struct {
	// Port is the UDP and TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// SIPDomain is the registrar domain (default "sip.test"): REGISTER is
	// saved without authentication, other requests for it go to
	// lookup("location") (404 when the user is not registered).
	SIPDomain string
	// Aliases are more local registrar domains handled like SIPDomain
	// (e.g. "lync.test"). Registrations are per user@domain.
	Aliases []string
	// XMPPDomains are domains whose requests go to Parley at ParleyAddr.
	XMPPDomains []string
	// ParleyAddr is host:port (IP literal) of Parley's SIP side.
	ParleyAddr string
	// ParleyTransport selects how requests go to Parley:
	//   "udp" (default): UDP, except that a request larger than 1300 bytes
	//         goes over TCP (RFC 3261 18.1.1; Kamailio's udp_mtu);
	//   "tcp": always TCP;
	//   "follow": the transport the request arrived on.
	ParleyTransport string
	// Debug is Kamailio's log level (default 2 = info; 3 = debug).
	Debug int
	// SharedMemMB is Kamailio's shared memory (-m) in MiB; 0 means 64.
	// Finished transactions stay in shared memory for 5 s, so a load of
	// 8,000 messages/s needs about 1024.
	SharedMemMB int

	// TLSPort, when not 0, adds a TLS listener on 127.0.0.1:TLSPort (the
	// tls module, TLSv1.2+, its own tls.cfg beside kamailio.cfg). When
	// LyncDomains is set and TLSPort is 0, a free port is picked.
	TLSPort int
	// TLSCert and TLSKey are Kamailio's certificate and key (PEM), presented
	// both to TLS clients and, as a client, to TLS servers (mutual TLS, as
	// a federation link with a Lync Edge is). Required with TLS. See
	// NewTestCA.
	TLSCert, TLSKey string
	// TLSCA, when set, is the only trust anchor: every TLS peer (client or
	// server) must present a certificate it issued. Empty: peers are not
	// verified.
	TLSCA string
	// LyncDomains maps a federated Lync domain (e.g. "lync.test") to the
	// TLS address ("127.0.0.1:port") of its Access Edge (the Lync
	// emulator). Out-of-dialog requests for such a domain are record-routed
	// (INVITE, SUBSCRIBE, REFER) and relayed over TLS with
	// $du = "sip:IP:PORT;transport=tls". A Lync domain must not also be a
	// local domain (SIPDomain, Aliases) or an XMPP domain.
	LyncDomains map[string]string
}

// Kamailio is a running Kamailio.
type Kamailio struct {
	Proc *Proc
	Dir  string
	// Addr is "127.0.0.1:port", for UDP and TCP.
	Addr string
	// TLSAddr is "127.0.0.1:port" of the TLS listener ("" without TLS).
	TLSAddr string
	Opts    KamailioOptions

	cfgPath string
	logw    io.Writer
	prevOut string
}

// KamailioBinary is the Kamailio executable.
const KamailioBinary = "kamailio"

// LaunchKamailio writes a configuration into dir, checks it with
// `kamailio -c` and starts Kamailio in the foreground. It returns once the
// TCP (and TLS) port accepts connections. logw, when not nil, receives the
// output.
func LaunchKamailio(dir string, logw io.Writer, o KamailioOptions) (*Kamailio, error) {
	if _, err := exec.LookPath(KamailioBinary); err != nil {
		return nil, fmt.Errorf("kamailio not installed (apt-get install kamailio): %w", err)
	}
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if err := o.pickPorts(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kamailio run dir: %w", err)
	}
	cfgPath, err := WriteKamailioConfig(dir, o)
	if err != nil {
		return nil, err
	}
	return launchKamailio(dir, logw, o, cfgPath)
}

// launchKamailio starts Kamailio on an already written configuration.
func launchKamailio(dir string, logw io.Writer, o KamailioOptions, cfgPath string) (*Kamailio, error) {
	if err := CheckKamailioConfig(cfgPath); err != nil {
		return nil, err
	}
	k := &Kamailio{Dir: dir, Addr: loopbackAddr(o.Port), Opts: o, logw: logw, cfgPath: cfgPath}
	if o.tlsEnabled() {
		k.TLSAddr = loopbackAddr(o.TLSPort)
	}
	if err := k.start(); err != nil {
		return nil, err
	}
	slog.Debug("kamailio started", "dir", dir, "addr", k.Addr, "tls_addr", k.TLSAddr)
	return k, nil
}

// WriteKamailioConfig writes kamailio.cfg into dir (and, with TLS,
// tls.cfg beside it, which kamailio.cfg names by a relative path) and
// returns the path of kamailio.cfg. o must have its ports set.
func WriteKamailioConfig(dir string, o KamailioOptions) (string, error) {
	cfg, err := KamailioConfig(o)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("kamailio run dir: %w", err)
	}
	if o.tlsEnabled() {
		if _, err := WriteFile(dir, kamailioTLSCfgName, KamailioTLSConfig(o), 0o644); err != nil {
			return "", fmt.Errorf("kamailio tls.cfg: %w", err)
		}
	}
	path, err := WriteFile(dir, "kamailio.cfg", cfg, 0o644)
	if err != nil {
		return "", fmt.Errorf("kamailio config: %w", err)
	}
	return path, nil
}

// StartKamailio starts Kamailio in a temp dir and stops it when t ends.
func StartKamailio(t testing.TB, o KamailioOptions) *Kamailio {
	t.Helper()
	k, err := LaunchKamailio(TempDir(t, "kamailio"), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			t.Logf("kamailio output:\n%s", tail(k.Output()))
		}
	})
	return k
}

// CheckKamailioConfig runs `kamailio -c -f path`.
func CheckKamailioConfig(path string) error {
	out, err := exec.Command(KamailioBinary, "-c", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kamailio -c -f %s: %w\n%s", path, err, out)
	}
	return nil
}

func (o *KamailioOptions) normalize() error {
	if o.SIPDomain == "" {
		o.SIPDomain = "sip.test"
	}
	if o.ParleyTransport == "" {
		o.ParleyTransport = "udp"
	}
	if o.Debug == 0 {
		o.Debug = 2
	}
	if o.SharedMemMB == 0 {
		o.SharedMemMB = 64
	}
	if o.SharedMemMB < 8 {
		return fmt.Errorf("kamailio: SharedMemMB %d: want at least 8", o.SharedMemMB)
	}
	switch o.ParleyTransport {
	case "udp", "tcp", "follow":
	default:
		return fmt.Errorf("kamailio: ParleyTransport %q: want udp, tcp or follow", o.ParleyTransport)
	}
	if len(o.XMPPDomains) > 0 {
		if err := checkLoopbackAddr(o.ParleyAddr); err != nil {
			return fmt.Errorf("kamailio: ParleyAddr: %w", err)
		}
	}
	local := append([]string{o.SIPDomain}, o.Aliases...)
	for _, d := range append(append([]string(nil), local...), o.XMPPDomains...) {
		if !domainRE.MatchString(d) {
			return fmt.Errorf("kamailio: bad domain %q", d)
		}
	}
	for d, addr := range o.LyncDomains {
		if !domainRE.MatchString(d) {
			return fmt.Errorf("kamailio: bad Lync domain %q", d)
		}
		if err := checkLoopbackAddr(addr); err != nil {
			return fmt.Errorf("kamailio: Lync domain %s: %w", d, err)
		}
		for _, other := range append(append([]string(nil), local...), o.XMPPDomains...) {
			if strings.EqualFold(d, other) {
				// A domain is served here (registrar) or federated, not
				// both: a local alias is "myself" to Kamailio, which
				// changes how it routes requests naming it.
				return fmt.Errorf("kamailio: Lync domain %q is also a local or XMPP domain", d)
			}
		}
	}
	if o.tlsEnabled() && (o.TLSCert == "" || o.TLSKey == "") {
		return errors.New("kamailio: TLS (TLSPort or LyncDomains) needs TLSCert and TLSKey (see harness.NewTestCA)")
	}
	for _, f := range []string{o.TLSCert, o.TLSKey, o.TLSCA} {
		if strings.ContainsAny(f, "\"\n") {
			return fmt.Errorf("kamailio: TLS file name %q", f)
		}
	}
	return nil
}

func (o *KamailioOptions) tlsEnabled() bool { return o.TLSPort != 0 || len(o.LyncDomains) > 0 }

// pickPorts chooses free ports for the listeners left at 0.
func (o *KamailioOptions) pickPorts() error {
	if o.Port == 0 {
		p, err := FindFreePort()
		if err != nil {
			return fmt.Errorf("kamailio: %w", err)
		}
		o.Port = p
	}
	if o.tlsEnabled() && o.TLSPort == 0 {
		for o.TLSPort == 0 || o.TLSPort == o.Port {
			p, err := FindFreePort()
			if err != nil {
				return fmt.Errorf("kamailio: %w", err)
			}
			o.TLSPort = p
		}
	}
	return nil
}

// checkLoopbackAddr checks that addr is "IP:port" with an IP literal (there
// is no DNS here).
func checkLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP literal (no DNS here)", addr)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	return nil
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

func (k *Kamailio) start() error {
	shm := k.Opts.SharedMemMB
	if shm == 0 {
		shm = 64
	}
	proc, err := Start("kamailio", k.Dir, k.logw, KamailioBinary,
		"-f", k.cfgPath, "-DD", "-E",
		"-Y", k.Dir, "-P", filepath.Join(k.Dir, "kamailio.pid"),
		"-w", k.Dir, // core files go to the working dir
		"-m", strconv.Itoa(shm), "-M", "8")
	if err != nil {
		return fmt.Errorf("kamailio: %w", err)
	}
	k.Proc = proc
	for _, addr := range []string{k.Addr, k.TLSAddr} {
		if addr == "" {
			continue
		}
		if err := proc.WaitPort(addr, 20*time.Second); err != nil {
			proc.Kill()
			return fmt.Errorf("kamailio: %w", err)
		}
	}
	return nil
}

// Output is everything Kamailio printed, across restarts.
func (k *Kamailio) Output() string {
	if k.Proc == nil {
		return k.prevOut
	}
	return k.prevOut + k.Proc.Output()
}

// Stop stops Kamailio (all its processes) and waits until its port is closed.
func (k *Kamailio) Stop() error {
	if k.Proc == nil {
		return nil
	}
	err := k.Proc.Stop(5 * time.Second)
	for _, addr := range []string{k.Addr, k.TLSAddr} {
		if addr == "" {
			continue
		}
		if perr := WaitPortClosed(addr, 5*time.Second); perr != nil {
			return fmt.Errorf("kamailio stop: %w", perr)
		}
	}
	if err != nil && !isSignalExit(err) {
		return fmt.Errorf("kamailio stop: %w", err)
	}
	return nil
}

// Restart stops Kamailio, waits for its port to close and starts it again
// with the same configuration. Registrations are lost (in-memory usrloc).
func (k *Kamailio) Restart() error {
	if err := k.Stop(); err != nil {
		return err
	}
	k.prevOut = k.Output()
	k.Proc = nil
	return k.start()
}

// KamailioRequest is one "REQ" line of Kamailio's log: a request as it
// arrived.
type KamailioRequest struct {
	Method string
	RURI   string
	Source string // ip:port
	Proto  string // udp, tcp, tls
	CallID string
	Len    int
}

// KamailioSend is one "SEND" line: a request as Kamailio forwarded it.
type KamailioSend struct {
	Method string
	RURI   string
	Dest   string // ip:port
	Proto  string // udp, tcp, tls
	CallID string
}

var (
	reqLineRE  = regexp.MustCompile(`REQ (\S+) (\S+) from (\S+) \((\w+)\) len=(\d+) cid=(\S*)`)
	sendLineRE = regexp.MustCompile(`SEND (\S+) (\S+) to (\S+) \((\w+)\) cid=(\S*)`)
)

// Requests parses the requests Kamailio received so far.
func (k *Kamailio) Requests() []KamailioRequest {
	var out []KamailioRequest
	for _, m := range reqLineRE.FindAllStringSubmatch(k.Output(), -1) {
		n, _ := strconv.Atoi(m[5])
		out = append(out, KamailioRequest{Method: m[1], RURI: m[2], Source: m[3], Proto: strings.ToLower(m[4]), Len: n, CallID: m[6]})
	}
	return out
}

// Sends parses the requests Kamailio forwarded so far.
func (k *Kamailio) Sends() []KamailioSend {
	var out []KamailioSend
	for _, m := range sendLineRE.FindAllStringSubmatch(k.Output(), -1) {
		out = append(out, KamailioSend{Method: m[1], RURI: m[2], Dest: m[3], Proto: strings.ToLower(m[4]), CallID: m[5]})
	}
	return out
}

// WaitRequest waits until Kamailio has logged a received request matching
// match (its log reaches us through a pipe, a moment after the request was
// handled).
func (k *Kamailio) WaitRequest(ctx context.Context, match func(KamailioRequest) bool) (KamailioRequest, error) {
	for {
		reqs := k.Requests()
		for _, r := range reqs {
			if match(r) {
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return KamailioRequest{}, fmt.Errorf("kamailio: no matching request among %d logged: %w", len(reqs), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitSend waits until Kamailio has logged a forwarded request matching match.
func (k *Kamailio) WaitSend(ctx context.Context, match func(KamailioSend) bool) (KamailioSend, error) {
	for {
		sends := k.Sends()
		for _, s := range sends {
			if match(s) {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return KamailioSend{}, fmt.Errorf("kamailio: no matching forwarded request among %d logged: %w", len(sends), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// KamailioConfig renders the configuration for o (after defaults).
func KamailioConfig(o KamailioOptions) (string, error) {
	if err := o.normalize(); err != nil {
		return "", err
	}
	if o.Port == 0 {
		return "", errors.New("kamailio config: Port is 0")
	}
	if o.tlsEnabled() && o.TLSPort == 0 {
		return "", errors.New("kamailio config: TLS wanted but TLSPort is 0")
	}
	mpath, err := kamailioModulePath()
	if err != nil {
		return "", err
	}
	if o.tlsEnabled() {
		if _, err := os.Stat(filepath.Join(mpath, "tls.so")); err != nil {
			return "", fmt.Errorf("kamailio: TLS needs the tls module (apt-get install kamailio-tls-modules): %w", err)
		}
	}
	local := append([]string{o.SIPDomain}, o.Aliases...)
	var parleyDU string
	switch o.ParleyTransport {
	case "udp":
		parleyDU = fmt.Sprintf("\t$du = \"sip:%s\";  # UDP; udp_mtu switches requests > 1300 bytes to TCP\n", o.ParleyAddr)
	case "tcp":
		parleyDU = fmt.Sprintf("\t$du = \"sip:%s;transport=tcp\";\n", o.ParleyAddr)
	case "follow":
		// Same transport as the request arrived on; Parley has no TLS
		// listener, so what came over TLS (from a Lync Edge) goes over TCP.
		parleyDU = fmt.Sprintf("\tif ($pr == \"tls\") { $du = \"sip:%[1]s;transport=tcp\"; }\n"+
			"\telse { $du = \"sip:%[1]s;transport=\" + $pr; }  # same transport as the request arrived on\n", o.ParleyAddr)
	}
	tlsGlobals, tlsModule := "", ""
	if o.tlsEnabled() {
		tlsGlobals = fmt.Sprintf("enable_tls=yes\nlisten=tls:127.0.0.1:%d\n", o.TLSPort)
		tlsModule = fmt.Sprintf("loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"%s\")  # relative to this file\n", kamailioTLSCfgName)
	}
	r := strings.NewReplacer(
		"@PORT@", strconv.Itoa(o.Port),
		"@DEBUG@", strconv.Itoa(o.Debug),
		"@MPATH@", mpath,
		"@ALIASES@", kamailioAliases(local),
		"@LOCAL_COND@", domainCond(local),
		"@XMPP_COND@", domainCond(o.XMPPDomains),
		"@PARLEY_DU@", parleyDU,
		"@PARLEY@", o.ParleyAddr,
		"@PARLEY_TRANSPORT@", o.ParleyTransport,
		"@SHM@", strconv.Itoa(o.SharedMemMB),
		"@TLS_GLOBALS@", tlsGlobals,
		"@TLS_MODULE@", tlsModule,
		"@LYNC_COND@", domainCond(sortedKeys(o.LyncDomains)),
		"@LYNC_DU@", lyncDU(o.LyncDomains),
		"@LYNC@", lyncSummary(o.LyncDomains),
	)
	return r.Replace(kamailioTemplate), nil
}

// kamailioTLSCfgName is the tls module's own configuration, beside kamailio.cfg.
const kamailioTLSCfgName = "tls.cfg"

// KamailioTLSConfig renders tls.cfg for o: one server and one client
// domain, TLSv1.2 or later, the same certificate in both directions, and,
// when o.TLSCA is set, peer certificates required and verified against it.
func KamailioTLSConfig(o KamailioOptions) string {
	verify := "verify_certificate = no\nrequire_certificate = no\n"
	if o.TLSCA != "" {
		verify = fmt.Sprintf("verify_certificate = yes\nrequire_certificate = yes\nverify_depth = 2\nca_list = %s\n", o.TLSCA)
	}
	var b strings.Builder
	b.WriteString("# Generated by Parley's integration harness (integration/harness/kamailio.go).\n")
	for _, side := range []string{"server", "client"} {
		fmt.Fprintf(&b, "\n[%s:default]\nmethod = TLSv1.2+\ncertificate = %s\nprivate_key = %s\n%s", side, o.TLSCert, o.TLSKey, verify)
	}
	return b.String()
}

// lyncDU sets $du to the Edge of the request's Lync domain.
func lyncDU(domains map[string]string) string {
	var b strings.Builder
	for i, d := range sortedKeys(domains) {
		if i > 0 {
			b.WriteString(" else ")
		} else {
			b.WriteString("\t")
		}
		fmt.Fprintf(&b, "if ($(rd{s.tolower}) == \"%s\") { $du = \"sip:%s;transport=tls\"; }", strings.ToLower(d), domains[d])
	}
	b.WriteString("\n")
	return b.String()
}

func lyncSummary(domains map[string]string) string {
	if len(domains) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(domains))
	for _, d := range sortedKeys(domains) {
		parts = append(parts, d+" -> "+domains[d])
	}
	return strings.Join(parts, ", ")
}

func kamailioModulePath() (string, error) {
	cands, _ := filepath.Glob("/usr/lib/*/kamailio/modules")
	cands = append(cands, "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules")
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "tm.so")); err == nil {
			return c + "/", nil
		}
	}
	return "", errors.New("kamailio modules directory (with tm.so) not found")
}

func kamailioAliases(domains []string) string {
	var b strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&b, "alias=\"%s\"\n", d)
	}
	return b.String()
}

// domainCond is a cfg condition true when the R-URI host is one of domains.
func domainCond(domains []string) string {
	if len(domains) == 0 {
		return "0"
	}
	parts := make([]string, len(domains))
	for i, d := range domains {
		parts[i] = fmt.Sprintf("$(rd{s.tolower}) == \"%s\"", strings.ToLower(d))
	}
	return strings.Join(parts, " || ")
}

const kamailioTemplate = `#!KAMAILIO
# Generated by Parley's integration harness (integration/harness/kamailio.go).
# Stateful proxy + registrar (no auth) on loopback:
#   local domains (registrar, lookup("location")): @LOCAL_COND@
#   XMPP domains (-> Parley at @PARLEY@, policy "@PARLEY_TRANSPORT@"): @XMPP_COND@
#   Lync domains (-> their Edge over TLS): @LYNC@
# Run with -m @SHM@ (shared memory, MiB).
# Every request is logged as "REQ <method> <R-URI> from <ip:port> (<proto>) len=<bytes> cid=<Call-ID>"
# and every forwarded request as "SEND <method> <R-URI> to <ip:port> (<proto>) cid=<Call-ID>";
# tests parse these lines to see which transports were used.

debug=@DEBUG@
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no      # every next hop is an IP literal ($du, registered contacts)
dns_try_ipv6=no
listen=udp:127.0.0.1:@PORT@
listen=tcp:127.0.0.1:@PORT@
@TLS_GLOBALS@@ALIASES@
# RFC 3261 18.1.1: a request larger than 1300 bytes is not sent over UDP but TCP
# (sipgo refuses to send UDP datagrams over 1300 bytes, too).
udp_mtu=1300
udp_mtu_try_proto=TCP
tcp_connection_lifetime=3605
tcp_accept_no_cl=yes
# The default TCP read buffer (4 KB) drops larger requests with "buffer
# overrun": chat messages of 20 KB and Lync's SDP need more.
tcp_rd_buf_size=65536
server_signature=no

mpath="@MPATH@"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
@TLS_MODULE@
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", 1)
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 30000)
modparam("usrloc", "db_mode", 0)        # in memory only
modparam("usrloc", "use_domain", 1)     # AOR is user@domain: carol@sip.test != carol@lync.test
modparam("registrar", "default_expires", 300)
modparam("registrar", "min_expires", 1)

request_route {
	xlog("L_INFO", "REQ $rm $ru from $si:$sp ($pr) len=$ml cid=$ci\n");
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	# 17895 leaves out the Proxy-Require check (512): no 420 for unknown option
	# tags, such as Lync's Proxy-Require: ms-benotify (lync-dialect.md 1.8).
	if (!sanity_check("17895", "7")) { xlog("L_WARN", "malformed request from $si:$sp\n"); exit; }

	# in-dialog requests follow the Route set
	if (has_totag()) {
		if (loose_route()) { route(RELAY); exit; }
		if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
		sl_send_reply("404", "Not here"); exit;
	}
	if (is_method("CANCEL")) { if (t_check_trans()) { route(RELAY); } exit; }
	t_check_trans();
	remove_hf("Route");
	if (is_method("INVITE|SUBSCRIBE|REFER")) { record_route(); }

	if (is_method("REGISTER")) {
		if (@LOCAL_COND@) {
			if (!save("location")) { sl_reply_error(); }
			exit;
		}
		sl_send_reply("403", "Not a registrar domain"); exit;
	}
	if (@XMPP_COND@) { route(PARLEY); exit; }
	if (@LYNC_COND@) { route(LYNC); exit; }
	if (@LOCAL_COND@) {
		if (!lookup("location")) {
			t_newtran();
			t_reply("404", "Not Found"); exit;
		}
		route(RELAY); exit;
	}
	sl_send_reply("404", "Unknown domain");
	exit;
}

route[PARLEY] {
@PARLEY_DU@	route(RELAY);
}

# A federated Lync domain: over TLS to its Access Edge.
route[LYNC] {
@LYNC_DU@	route(RELAY);
}

route[RELAY] {
	t_on_reply("REPLY");
	if (!t_relay()) { sl_reply_error(); }
	exit;
}

onreply_route[REPLY] {
	xlog("L_INFO", "REPLY $rs $rr for $rm from $si:$sp ($pr) cid=$ci\n");
}

onsend_route {
	xlog("L_INFO", "SEND $rm $ru to $snd(ip):$snd(port) ($snd(sproto)) cid=$ci\n");
}
`
