package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/integration/lyncemu"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until out matches re and returns the first submatch.
func waitFor(ctx context.Context, t *testing.T, out *syncBuf, re *regexp.Regexp) string {
	t.Helper()
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("output never matched %s:\n%s", re, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// The interactive peer, driven through stdin, against another emulator.
func TestInteractive(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca := harness.StartTestCA(t)
	peerLeaf := ca.MustIssue(t, "peer", "127.0.0.1", "xmpp.test")
	peerTLS, err := lyncemu.LoadTLS(peerLeaf.CertFile, peerLeaf.KeyFile, peerLeaf.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	peer := lyncemu.Start(t, lyncemu.Options{Domain: "xmpp.test", Users: []string{"alice"}, TLS: peerTLS})
	leaf := ca.MustIssue(t, "edge", "127.0.0.1", "lync.test")

	stdin, typing := io.Pipe()
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-proxy", peer.Addr(), "-cert", leaf.CertFile, "-key", leaf.KeyFile, "-ca", ca.CertFile}, stdin, out, out)
	}()
	addr := waitFor(ctx, t, out, regexp.MustCompile(`on (127\.0\.0\.1:\d+) \(TLS\)`))
	if err := peer.SetProxy(addr); err != nil {
		t.Fatal(err)
	}
	say := func(line string) {
		if _, err := io.WriteString(typing, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	say("/chat sip:alice@xmpp.test")
	if _, err := peer.Wait(ctx, lyncemu.Is(lyncemu.EventInvite)); err != nil {
		t.Fatal(err)
	}
	say("hello from the keyboard")
	if _, err := peer.Wait(ctx, lyncemu.Want{Type: lyncemu.EventMessage, Body: "hello from the keyboard"}); err != nil {
		t.Fatal(err)
	}
	say("/typing")
	if _, err := peer.Wait(ctx, lyncemu.Want{Type: lyncemu.EventTyping, State: "type"}); err != nil {
		t.Fatal(err)
	}
	if err := peer.User("alice").Session("sip:dave@lync.test").Send(ctx, "hi dave"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, out, regexp.MustCompile(`\[dave\] <- sip:alice@xmpp\.test message 200 hi dave`))
	say("/as nobody")
	waitFor(ctx, t, out, regexp.MustCompile(`error: no user "nobody"`))
	say("/bye")
	if _, err := peer.Wait(ctx, lyncemu.Is(lyncemu.EventBye)); err != nil {
		t.Fatal(err)
	}
	say("/quit")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return after /quit")
	}
	if strings.Contains(out.String(), "!!") {
		t.Errorf("violations printed:\n%s", out.String())
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},                           // no proxy
		{"-proxy", "127.0.0.1:5061"}, // no certificate
		{"-proxy", "127.0.0.1:5061", "-cert", "x.crt"},
		{"-bogus"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	c, err := parseFlags([]string{"-proxy", "127.0.0.1:5061", "-pki", t.TempDir(), "-no-text-format"}, io.Discard)
	if err != nil || !c.behaviour.NoTextFormat || c.domain != "lync.test" || c.users != "dave,erin" {
		t.Errorf("%+v %v", c, err)
	}
}
