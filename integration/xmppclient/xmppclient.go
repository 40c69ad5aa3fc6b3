// Package xmppclient drives a real XMPP client (python3-slixmpp, see
// client.py) from Go tests: it logs in to a server on loopback, sends
// messages on command and reports every message it receives.
package xmppclient

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed client.py
var script string

// Python is Debian's interpreter, which has python3-slixmpp (a python3
// earlier on PATH may not).
const Python = "/usr/bin/python3"

// Options configures a client.
type Options struct {
	// JID is the full or bare JID to log in as, e.g. "alice@xmpp.test/test".
	JID string
	// Password of the account.
	Password string
	// Addr is the server's c2s address, an IP literal with port
	// ("127.0.0.1:5222"); no DNS is used.
	Addr string
	// Log, when not nil, receives the script's stderr (and its slixmpp
	// debug log with Debug).
	Log io.Writer
	// Debug turns on slixmpp's debug log (every stanza) on stderr.
	Debug bool
	// ReadyTimeout bounds login; default 20s (a loaded machine is slow).
	ReadyTimeout time.Duration
}

// StanzaError is the <error/> of a message of type "error".
type StanzaError struct {
	Condition string `json:"condition"`
	Type      string `json:"type"`
	Text      string `json:"text"`
}

// Message is a <message/> the client received.
type Message struct {
	From   string       `json:"from"`
	To     string       `json:"to"`
	ID     string       `json:"id"`
	Type   string       `json:"type"`
	Body   string       `json:"body"`
	Thread string       `json:"thread"`
	XML    string       `json:"xml"`
	Error  *StanzaError `json:"error,omitempty"`
}

// Client is a running slixmpp client.
type Client struct {
	opts   Options
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	done   chan struct{}

	writeMu sync.Mutex

	mu       sync.Mutex
	msgs     []Message
	taken    []bool
	notify   chan struct{} // closed and replaced on every change
	ready    bool
	fatal    string
	exited   bool
	exitNote string
}

// Launch starts the client and returns once it is logged in and has sent
// its initial presence. Close it when done.
func Launch(ctx context.Context, o Options) (*Client, error) {
	if o.JID == "" || o.Addr == "" {
		return nil, errors.New("xmppclient: JID and Addr are required")
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("xmppclient: addr %q: %w", o.Addr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("xmppclient: addr %q: host must be an IP literal", o.Addr)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("xmppclient: addr %q: %w", o.Addr, err)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 20 * time.Second
	}
	args := []string{"-u", "-c", script, "--jid", o.JID, "--password", o.Password, "--host", host, "--port", port}
	if o.Debug {
		args = append(args, "--debug")
	}
	c := &Client{opts: o, stderr: &lockedBuffer{}, done: make(chan struct{}), notify: make(chan struct{})}
	c.cmd = exec.Command(Python, args...)
	c.cmd.Env = []string{"LANG=C.UTF-8", "PYTHONIOENCODING=utf-8", "PATH=/usr/bin:/bin"}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if o.Log != nil {
		c.cmd.Stderr = io.MultiWriter(c.stderr, o.Log)
	} else {
		c.cmd.Stderr = c.stderr
	}
	c.stdin, err = c.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("xmppclient: stdin: %w", err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("xmppclient: stdout: %w", err)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("xmppclient: start %s: %w", Python, err)
	}
	go c.read(stdout)

	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		ready, fatal, exited, ch := c.ready, c.fatal, c.exited, c.notify
		c.mu.Unlock()
		switch {
		case ready:
			slog.Debug("xmpp client ready", "jid", o.JID, "addr", o.Addr)
			return c, nil
		case fatal != "" || exited:
			c.Close()
			return nil, fmt.Errorf("xmppclient %s: login failed: %s\n%s", o.JID, fatal, c.Stderr())
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("xmppclient %s: not ready: %w\n%s", o.JID, ctx.Err(), c.Stderr())
		}
	}
}

// Start is Launch for tests: it fails t on error and closes the client
// when t ends.
func Start(t testing.TB, o Options) *Client {
	t.Helper()
	c, err := Launch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("xmppclient %s stderr:\n%s", o.JID, c.Stderr())
		}
	})
	return c
}

func (c *Client) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var line struct {
			Ready        bool     `json:"ready"`
			Message      *Message `json:"message"`
			Fatal        string   `json:"fatal"`
			Disconnected *string  `json:"disconnected"`
			BadCommand   string   `json:"bad_command"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			slog.Warn("xmppclient: bad output line", "jid", c.opts.JID, "line", sc.Text(), "err", err)
			continue
		}
		c.mu.Lock()
		switch {
		case line.Ready:
			c.ready = true
		case line.Message != nil:
			c.msgs = append(c.msgs, *line.Message)
			c.taken = append(c.taken, false)
		case line.Fatal != "":
			c.fatal = line.Fatal
		case line.Disconnected != nil:
			c.exitNote = "disconnected: " + *line.Disconnected
		case line.BadCommand != "":
			slog.Warn("xmppclient: command rejected", "jid", c.opts.JID, "err", line.BadCommand)
		}
		c.wakeLocked()
		c.mu.Unlock()
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.exited = true
	if c.exitNote == "" {
		c.exitNote = fmt.Sprintf("exited: %v", err)
	}
	c.wakeLocked()
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) wakeLocked() {
	close(c.notify)
	c.notify = make(chan struct{})
}

func (c *Client) command(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("xmppclient: encode command: %w", err)
	}
	b = append(b, '\n')
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if _, err := c.stdin.Write(b); err != nil {
		return fmt.Errorf("xmppclient %s: send command: %w", c.opts.JID, err)
	}
	return nil
}

// Send sends a chat message. id may be empty (slixmpp picks one).
func (c *Client) Send(to, id, body string) error {
	return c.SendType(to, id, "chat", body)
}

// SendType sends a message of the given type ("chat", "normal", ...).
func (c *Client) SendType(to, id, typ, body string) error {
	return c.command(map[string]any{"send": map[string]string{"to": to, "id": id, "type": typ, "body": body}})
}

// SendRaw writes raw XML to the stream (for stanzas Send cannot express).
func (c *Client) SendRaw(xml string) error {
	return c.command(map[string]string{"raw": xml})
}

// SendPresence sends a presence; to and typ may be empty.
func (c *Client) SendPresence(to, typ string) error {
	p := map[string]string{}
	if to != "" {
		p["to"] = to
	}
	if typ != "" {
		p["type"] = typ
	}
	return c.command(map[string]any{"presence": p})
}

// Wait returns the oldest received message that matches match and was not
// returned by an earlier Wait, waiting for it until ctx ends or the client
// exits. A nil match matches any message.
func (c *Client) Wait(ctx context.Context, match func(Message) bool) (Message, error) {
	next := 0
	for {
		c.mu.Lock()
		for ; next < len(c.msgs); next++ {
			if !c.taken[next] && (match == nil || match(c.msgs[next])) {
				c.taken[next] = true
				m := c.msgs[next]
				c.mu.Unlock()
				return m, nil
			}
		}
		exited, note, ch := c.exited, c.exitNote, c.notify
		c.mu.Unlock()
		if exited {
			return Message{}, fmt.Errorf("xmppclient %s: no matching message before client %s", c.opts.JID, note)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("xmppclient %s: no matching message among %d received: %w", c.opts.JID, c.Count(), ctx.Err())
		}
	}
}

// WaitBody is Wait for the next message with this body.
func (c *Client) WaitBody(ctx context.Context, body string) (Message, error) {
	return c.Wait(ctx, func(m Message) bool { return m.Body == body })
}

// All returns every message received so far.
func (c *Client) All() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Count is the number of messages received so far.
func (c *Client) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// Stderr is what the script wrote to stderr.
func (c *Client) Stderr() string { return c.stderr.String() }

// Done is closed when the client process has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close disconnects and ends the client process (killing it after 3s).
func (c *Client) Close() error {
	c.writeMu.Lock()
	c.stdin.Close()
	c.writeMu.Unlock()
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
