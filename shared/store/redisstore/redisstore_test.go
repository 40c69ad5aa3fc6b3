package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleygw/parley/integration/harness"
	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/redisstore"
	"github.com/parleygw/parley/shared/store/storetest"
)

const eventually = 20 * time.Second

var prefixSeq atomic.Int64

// uniquePrefix keeps backends sharing one Redis apart.
func uniquePrefix() string { return fmt.Sprintf("test%d:", prefixSeq.Add(1)) }

func TestConformance(t *testing.T) {
	r := harness.StartRedis(t, false)
	storetest.Run(t, func(t *testing.T) store.Backend {
		return open(t, r.URL(), redisstore.Options{
			KeyPrefix:  uniquePrefix(),
			ClaimAfter: storetest.ClaimAfter,
			Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	})
}

func open(t testing.TB, url string, opt redisstore.Options) *redisstore.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	be, err := redisstore.New(ctx, url, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return be
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	return ctx
}

// received collects the event types a handler saw, in order.
type received struct {
	mu      sync.Mutex
	types   []string
	changed chan struct{}
}

func newReceived() *received { return &received{changed: make(chan struct{})} }

func (r *received) handler(fail func(store.Event) error) store.Handler {
	return func(_ context.Context, ev store.Event) error {
		if fail != nil {
			if err := fail(ev); err != nil {
				return err
			}
		}
		r.mu.Lock()
		r.types = append(r.types, ev.Type)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		return nil
	}
}

func (r *received) waitCount(t *testing.T, n int) []string {
	t.Helper()
	timer := time.NewTimer(eventually)
	defer timer.Stop()
	for {
		r.mu.Lock()
		got, ch := append([]string(nil), r.types...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("got %d events %v, want %d", len(got), got, n)
		}
	}
}

func (r *received) waitType(t *testing.T, typ string) {
	t.Helper()
	timer := time.NewTimer(eventually)
	defer timer.Stop()
	for {
		r.mu.Lock()
		found, ch := slices.Contains(r.types, typ), r.changed
		got := append([]string(nil), r.types...)
		r.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("no %s among %v", typ, got)
		}
	}
}

// consume runs Consume until the returned stop is called (or t ends) and
// fails the test if Consume returns early.
func consume(t *testing.T, be store.Backend, topic, group, name string, h store.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- be.Consume(ctx, topic, group, name, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume: %v", err)
				}
			case <-time.After(eventually):
				t.Errorf("Consume did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publish(t *testing.T, be store.Backend, topic string, types ...string) {
	t.Helper()
	for _, typ := range types {
		if err := be.Publish(ctxT(t), topic, store.Event{Key: "k", Type: typ}); err != nil {
			t.Fatalf("Publish %s: %v", typ, err)
		}
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// TestRestartWithAOFKeepsEvents: what Redis acknowledged survives a Redis
// restart when Redis persists with AOF: events not yet read, events read
// but not acknowledged, and acknowledgements.
func TestRestartWithAOFKeepsEvents(t *testing.T) {
	r := harness.StartRedis(t, true)
	be := open(t, r.URL(), redisstore.Options{})
	defer be.Close()

	// acked: handled before the restart; pending: read, handler failing.
	rec := newReceived()
	stop := consume(t, be, "topic", "group", "c1", rec.handler(func(ev store.Event) error {
		if strings.HasPrefix(ev.Type, "pending") {
			return errors.New("far side down")
		}
		return nil
	}))
	publish(t, be, "topic", seq("acked", 5)...)
	rec.waitCount(t, 5)
	publish(t, be, "topic", seq("pending", 3)...)
	stop()
	publish(t, be, "topic", seq("unread", 10)...)

	if err := r.Proc.Stop(10 * time.Second); err != nil {
		t.Logf("redis stop: %v", err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}

	rec2 := newReceived()
	consume(t, be, "topic", "group", "c1", rec2.handler(nil))
	want := append(seq("pending", 3), seq("unread", 10)...)
	got := rec2.waitCount(t, len(want))
	publish(t, be, "topic", "sentinel")
	got = rec2.waitCount(t, len(want)+1)
	if strings.Join(got[:len(want)], ",") != strings.Join(want, ",") || got[len(want)] != "sentinel" {
		t.Fatalf("after restart got %v, want %v then sentinel", got, want)
	}
}

// logRecorder keeps log lines and signals messages waited for.
type logRecorder struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	count map[string]int
	seen  chan string
}

func newLogRecorder() (*logRecorder, *slog.Logger) {
	lr := &logRecorder{count: map[string]int{}, seen: make(chan string, 100)}
	return lr, slog.New(lr)
}

func (lr *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (lr *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{lr: lr, attrs: as}
}
func (lr *logRecorder) WithGroup(string) slog.Handler { return lr }
func (lr *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	return lr.handle(rec, nil)
}

func (lr *logRecorder) handle(rec slog.Record, attrs []slog.Attr) error {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	fmt.Fprintf(&lr.buf, "%s %s", rec.Level, rec.Message)
	for _, a := range attrs {
		fmt.Fprintf(&lr.buf, " %s", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&lr.buf, " %s", a)
		return true
	})
	lr.buf.WriteByte('\n')
	lr.count[rec.Message]++
	select {
	case lr.seen <- rec.Message:
	default:
	}
	return nil
}

func (lr *logRecorder) String() string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.buf.String()
}

func (lr *logRecorder) n(msg string) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.count[msg]
}

func (lr *logRecorder) waitFor(t *testing.T, msg string) {
	t.Helper()
	timer := time.NewTimer(eventually)
	defer timer.Stop()
	for lr.n(msg) == 0 {
		select {
		case <-lr.seen:
		case <-timer.C:
			t.Fatalf("no log %q; logs:\n%s", msg, lr)
		}
	}
}

type attrHandler struct {
	lr    *logRecorder
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{lr: h.lr, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }
func (h *attrHandler) Handle(_ context.Context, rec slog.Record) error {
	return h.lr.handle(rec, h.attrs)
}

const (
	msgDown = "redis unavailable; retrying with backoff"
	msgUp   = "redis available again"
)

// TestOutage: with Redis down, calls fail fast with ErrUnavailable; a
// running Consume waits it out (one warning) and resumes on its own once
// Redis is back, even though Redis lost the stream and group.
func TestOutage(t *testing.T) {
	r := harness.StartRedis(t, false)
	lr, log := newLogRecorder()
	be := open(t, r.URL(), redisstore.Options{Logger: log})
	defer be.Close()

	rec := newReceived()
	consume(t, be, "topic", "group", "c1", rec.handler(nil))
	publish(t, be, "topic", "before")
	rec.waitCount(t, 1)

	if err := r.Proc.Stop(10 * time.Second); err != nil {
		t.Logf("redis stop: %v", err)
	}
	if err := harness.WaitPortClosed(r.Addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	ctx := ctxT(t)
	start := time.Now()
	err := be.Publish(ctx, "topic", store.Event{Type: "lost"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Publish with Redis down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Publish took %v to fail", d)
	}
	t.Logf("Publish failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if _, err := be.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable", err)
	}
	if err := be.Put(ctx, "k", []byte("v"), 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put = %v, want ErrUnavailable", err)
	}
	if _, err := be.PutIfAbsent(ctx, "k", []byte("v"), 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("PutIfAbsent = %v, want ErrUnavailable", err)
	}
	if err := be.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
	// A caller's deadline bounds Publish too.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start = time.Now()
	err = be.Publish(short, "topic", store.Event{Type: "lost"})
	cancel()
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("Publish with a 300ms deadline = %v after %v", err, time.Since(start))
	}

	lr.waitFor(t, msgDown)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// go-redis keeps failing fast for up to a second after repeated dial
	// errors, until its background dial succeeds: the caller retries.
	deadline := time.Now().Add(eventually)
	for {
		err := be.Publish(ctx, "topic", store.Event{Type: "after"})
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Publish after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // nothing to wait on but Redis' readiness
	}
	got := rec.waitCount(t, 2)
	if got[1] != "after" {
		t.Fatalf("got %v", got)
	}
	lr.waitFor(t, msgUp)
	if n := lr.n(msgDown); n != 1 {
		t.Errorf("%d outage warnings for one outage; logs:\n%s", n, lr)
	}
	if err := be.Ping(ctx); err != nil {
		t.Errorf("Ping after restart: %v", err)
	}
}

// TestPasswordNeverLogged: the URL's password appears in no log line and
// no error.
func TestPasswordNeverLogged(t *testing.T) {
	const pw = "s3cr3t-pa55"
	r := harness.StartRedis(t, false)
	ctx := ctxT(t)
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	if err := admin.ConfigSet(ctx, "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	lr, log := newLogRecorder()
	url := "redis://:" + pw + "@" + r.Addr + "/0"
	be := open(t, url, redisstore.Options{Logger: log})
	defer be.Close()
	rec := newReceived()
	consume(t, be, "topic", "group", "c1", rec.handler(nil))
	publish(t, be, "topic", "x")
	rec.waitCount(t, 1)

	var errs []error
	for _, bad := range []string{
		"redis://:wrong-" + pw + "@" + r.Addr + "/0",
		"redis://:" + pw + "@127.0.0.1:notaport/0",
		"redis://:" + pw + "@[::1/0",
		"http://:" + pw + "@" + r.Addr,
	} {
		_, err := redisstore.New(ctx, bad, redisstore.Options{Logger: log})
		if err == nil {
			t.Errorf("New(%s) succeeded", redisstore.Redact(bad))
		}
		errs = append(errs, err)
	}

	// An outage makes the consumer log; Redis comes back without the
	// password set.
	r.Proc.Stop(10 * time.Second)
	lr.waitFor(t, msgDown)
	errs = append(errs, be.Publish(ctx, "topic", store.Event{Type: "y"}))
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if s := lr.String(); strings.Contains(s, pw) {
		t.Errorf("logs show the password:\n%s", s)
	} else if !strings.Contains(s, "xxxxx@") {
		t.Errorf("logs do not name the (redacted) Redis URL:\n%s", s)
	}
}

// TestClaimAcrossProcesses: the pending events of a process that went away
// are handled by another process of the same group after ClaimAfter.
func TestClaimAcrossProcesses(t *testing.T) {
	r := harness.StartRedis(t, false)
	opt := redisstore.Options{ClaimAfter: 300 * time.Millisecond}
	a := open(t, r.URL(), opt)
	b := open(t, r.URL(), opt)
	defer b.Close()

	held := make(chan struct{}, 10)
	stopA := consume(t, a, "topic", "group", "a", func(context.Context, store.Event) error {
		held <- struct{}{}
		return errors.New("far side down")
	})
	publish(t, a, "topic", seq("e", 5)...)
	<-held
	stopA()
	a.Close() // the process is gone

	rec := newReceived()
	consume(t, b, "topic", "group", "b", rec.handler(nil))
	got := rec.waitCount(t, 5)
	if strings.Join(got, ",") != strings.Join(seq("e", 5), ",") {
		t.Fatalf("b got %v", got)
	}
}

func BenchmarkBus(b *testing.B) {
	r := harness.StartRedis(b, false)
	be := open(b, r.URL(), redisstore.Options{KeyPrefix: uniquePrefix()})
	defer be.Close()
	storetest.BenchmarkBus(b, be, 32)
}

// TestHungRedis: a Redis that stops answering (SIGSTOP) makes Publish fail
// within its timeouts, and the consumer carries on once it answers again.
func TestHungRedis(t *testing.T) {
	r := harness.StartRedis(t, false)
	be := open(t, r.URL(), redisstore.Options{})
	defer be.Close()
	rec := newReceived()
	consume(t, be, "topic", "group", "c1", rec.handler(nil))
	publish(t, be, "topic", "before")
	rec.waitCount(t, 1)

	r.Proc.Signal(syscall.SIGSTOP)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			r.Proc.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	start := time.Now()
	err := be.Publish(context.Background(), "topic", store.Event{Type: "during"})
	elapsed := time.Since(start)
	t.Logf("Publish to a hung Redis: %v after %v", err, elapsed.Round(time.Millisecond))
	if err == nil {
		// The XADD may have reached Redis' socket buffer; when Redis wakes
		// up it runs it. Only a timely error matters here.
		t.Fatal("Publish to a hung Redis succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Publish to a hung Redis = %v, want ErrUnavailable", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Publish to a hung Redis took %v", elapsed)
	}
	resume()
	publish(t, be, "topic", "after")
	rec.waitType(t, "after") // "during" may come too: Redis ran what it had read
}
