// Command lyncemu runs the Lync emulator as an interactive peer: a
// federated Lync domain (default lync.test, users dave and erin) on a TLS
// port, sending to a federation proxy (Kamailio's TLS port). It prints
// what it receives; lines typed on stdin go to the peer of the last
// conversation. Commands:
//
//	/chat [user] sip:peer   open a session (from user; default: the current one)
//	/as user                write as user from now on
//	/html <markup>          send HTML
//	/typing, /idle          KeyboardActivity INFO
//	/bye                    end the conversation (BYE)
//	/drop                   forget its dialog without BYE (the peer then gets 481)
//	/quit                   stop
//
// Certificates: -cert/-key/-ca (PEM), or -pki DIR to make a throwaway CA
// and an Edge certificate there (its ca.crt must then be Kamailio's TLSCA).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/lyncemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "lyncemu:", err)
		os.Exit(1)
	}
}

// config is what the flags say.
type config struct {
	domain, users, listen, proxy string
	cert, key, ca, pki           string
	behaviour                    lyncemu.Behaviour
	verbose                      bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("lyncemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.domain, "domain", "lync.test", "SIP domain served")
	fs.StringVar(&c.users, "users", "dave,erin", "comma-separated users")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "TLS listen address (ip:port)")
	fs.StringVar(&c.proxy, "proxy", "", "federation proxy, ip:port of Kamailio's TLS listener (required)")
	fs.StringVar(&c.cert, "cert", "", "Edge certificate (PEM)")
	fs.StringVar(&c.key, "key", "", "Edge key (PEM)")
	fs.StringVar(&c.ca, "ca", "", "CA that peers' certificates must chain to (PEM); mutual TLS when set")
	fs.StringVar(&c.pki, "pki", "", "make a throwaway CA and Edge certificate in this directory (instead of -cert/-key/-ca)")
	fs.BoolVar(&c.behaviour.AcceptPager, "accept-pager", false, "answer pager-mode MESSAGE with 200 instead of refusing it")
	fs.IntVar(&c.behaviour.PagerRejectCode, "pager-code", 488, "status for refused pager-mode MESSAGE")
	fs.BoolVar(&c.behaviour.NoTextFormat, "no-text-format", false, "leave Supported: ms-text-format out of 200s to INVITE")
	fs.StringVar(&c.behaviour.PolicyWord, "policy-word", "", "refuse messages containing this word with 606 + Warning: 309")
	fs.BoolVar(&c.verbose, "v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.proxy == "" {
		return c, errors.New("-proxy is required")
	}
	if c.pki == "" && (c.cert == "" || c.key == "") {
		return c, errors.New("give -cert and -key (and -ca), or -pki DIR")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if c.pki != "" {
		ca, err := harness.NewTestCA(c.pki)
		if err != nil {
			return err
		}
		leaf, err := ca.Issue("edge", "127.0.0.1", c.domain, "sip."+c.domain)
		if err != nil {
			return err
		}
		c.cert, c.key, c.ca = leaf.CertFile, leaf.KeyFile, ca.CertFile
		fmt.Fprintf(stdout, "made a test CA: %s (give it to Kamailio as TLSCA; the CA key is %s)\n", ca.CertFile, ca.KeyFile)
	}
	conf, err := lyncemu.LoadTLS(c.cert, c.key, c.ca)
	if err != nil {
		return err
	}
	emu, err := lyncemu.New(ctx, lyncemu.Options{
		Domain: c.domain, Users: strings.Split(c.users, ","), ListenAddr: c.listen,
		TLS: conf, Proxy: c.proxy, Behaviour: c.behaviour, Logger: log,
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	s := &shell{emu: emu, out: stdout, user: emu.Users()[0]}
	fmt.Fprintf(stdout, "lync emulator for %s on %s (TLS), sending to %s; users %s; writing as %s\n",
		emu.Domain(), emu.Addr(), c.proxy, strings.Join(emu.Users(), ", "), s.user)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.printEvents(ctx) }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	defer wg.Wait()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if quit := s.handle(ctx, line); quit {
				return nil
			}
		}
	}
}

// shell is the interactive state: who writes, and to which conversation.
type shell struct {
	emu *lyncemu.Emulator
	out io.Writer

	mu   sync.Mutex
	user string
	last *lyncemu.Chat
}

func (s *shell) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, format, args...)
}

// printEvents prints each event and follows the conversation it is in.
func (s *shell) printEvents(ctx context.Context) {
	for {
		ev, err := s.emu.Wait(ctx, nil)
		if err != nil {
			return
		}
		text := ev.Body
		if ev.HTML != "" {
			text = ev.HTML
		}
		switch ev.Type {
		case lyncemu.EventTyping:
			text = ev.State
		case lyncemu.EventAck, lyncemu.EventBye, lyncemu.EventOptions:
			text = ""
		}
		s.printf("[%s] <- %s %s %d %s\n", ev.User, ev.Peer, ev.Type, ev.Status, oneLine(text))
		for _, v := range ev.Violations {
			s.printf("[%s] !! %s\n", ev.User, v)
		}
		if ev.DialogID != "" && ev.User != "" && (ev.Type == lyncemu.EventInvite || ev.Type == lyncemu.EventMessage) {
			if c := s.emu.User(ev.User).Session(ev.Peer); c != nil {
				s.mu.Lock()
				s.last = c
				s.mu.Unlock()
			}
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", "\\n")
}

// handle runs one input line and reports whether to quit.
func (s *shell) handle(ctx context.Context, line string) bool {
	line = strings.TrimSpace(line)
	if line == "" {
		return false
	}
	cmd, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	s.mu.Lock()
	user, last := s.user, s.last
	s.mu.Unlock()
	var err error
	switch cmd {
	case "/quit":
		return true
	case "/as":
		if !slices.Contains(s.emu.Users(), rest) {
			err = fmt.Errorf("no user %q (users: %s)", rest, strings.Join(s.emu.Users(), ", "))
			break
		}
		s.mu.Lock()
		s.user = rest
		s.mu.Unlock()
	case "/chat":
		from, peer := user, rest
		if a, b, ok := strings.Cut(rest, " "); ok {
			from, peer = a, strings.TrimSpace(b)
		}
		var c *lyncemu.Chat
		if c, err = s.emu.User(from).Chat(ctx, peer); err == nil {
			s.mu.Lock()
			s.last = c
			s.mu.Unlock()
			s.printf("[%s] session with %s open\n", from, peer)
		}
	case "/html", "/typing", "/idle", "/bye", "/drop":
		if last == nil {
			err = errors.New("no conversation yet: /chat sip:someone@domain")
			break
		}
		switch cmd {
		case "/html":
			err = last.SendHTML(ctx, rest)
		case "/typing":
			err = last.Typing(ctx)
		case "/idle":
			err = last.Idle(ctx)
		case "/bye":
			err = last.Bye(ctx)
		case "/drop":
			last.Drop()
		}
	default:
		if strings.HasPrefix(cmd, "/") {
			err = fmt.Errorf("unknown command %s", cmd)
			break
		}
		if last == nil {
			err = errors.New("no conversation yet: /chat sip:someone@domain")
			break
		}
		err = last.Send(ctx, line)
	}
	if err != nil {
		s.printf("error: %v\n", err)
	}
	return false
}
