// Package storetest is the conformance suite of store.Backend: every
// implementation runs Run, so the memory and Redis backends keep the same
// behaviour. It also holds the Bus benchmark both run.
//
// It must not know about any implementation.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleygw/parley/shared/store"
)

// ClaimAfter is the ClaimAfter setting newBackend must give the backends it
// returns: the suite checks that events of a consumer gone that long go to
// another member of its group, and that a live consumer keeps its own
// however long it retries them.
const ClaimAfter = time.Second

// MaxWindow is the largest number of events one consumer may hold at once
// (read and not yet acknowledged) for the sharing test to be meaningful.
const MaxWindow = 2048

// eventually bounds every wait for something that must happen.
const eventually = 20 * time.Second

// Run runs the suite. newBackend returns a fresh, empty Backend (state
// shared with no other call) configured with ClaimAfter, a Window of at
// most MaxWindow and otherwise default options; the suite closes it.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	open := func(t *testing.T) store.Backend {
		t.Helper()
		be := newBackend(t)
		t.Cleanup(func() {
			if err := be.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return be
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, be store.Backend)
	}{
		{"Store/PutGetDelete", testPutGetDelete},
		{"Store/PutIfAbsent", testPutIfAbsent},
		{"Store/TTL", testTTL},
		{"Store/ValuesAreCopied", testValuesAreCopied},
		{"Ping", testPing},
		{"Bus/PublishConsume", testPublishConsume},
		{"Bus/PublishBeforeFirstConsume", testPublishBeforeFirstConsume},
		{"Bus/AckOnlyAfterSuccess", testAckOnlyAfterSuccess},
		{"Bus/RestartGetsPending", testRestartGetsPending},
		{"Bus/ClaimFromGoneConsumer", testClaimFromGoneConsumer},
		{"Bus/LiveConsumerKeepsPending", testLiveConsumerKeepsPending},
		{"Bus/GroupMembersShare", testGroupMembersShare},
		{"Bus/GroupsEachGetAll", testGroupsEachGetAll},
		{"Bus/KeyOrder", testKeyOrder},
		{"Bus/KeysRunInParallel", testKeysRunInParallel},
		{"Bus/DrainOnCancel", testDrainOnCancel},
		{"Bus/DeduplicateSkipsRedelivery", testDeduplicate},
		{"Bus/CloseStopsConsume", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	return ctx
}

// ---- Store ----

func testPutGetDelete(t *testing.T, be store.Backend) {
	ctx := ctxT(t)
	if _, err := be.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	must(t, be.Put(ctx, "a", []byte("one"), 0))
	expectValue(t, be, "a", "one")
	must(t, be.Put(ctx, "a", []byte("two"), 0))
	expectValue(t, be, "a", "two")
	must(t, be.Put(ctx, "empty", nil, 0))
	expectValue(t, be, "empty", "")
	must(t, be.Delete(ctx, "a"))
	if _, err := be.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	must(t, be.Delete(ctx, "a")) // missing: not an error
	if err := be.Put(ctx, "neg", []byte("x"), -time.Second); err == nil {
		t.Errorf("Put with a negative ttl succeeded")
	}
}

func testPutIfAbsent(t *testing.T, be store.Backend) {
	ctx := ctxT(t)
	ok, err := be.PutIfAbsent(ctx, "k", []byte("first"), 0)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent(new) = %v, %v; want true", ok, err)
	}
	ok, err = be.PutIfAbsent(ctx, "k", []byte("second"), 0)
	if err != nil || ok {
		t.Fatalf("PutIfAbsent(existing) = %v, %v; want false", ok, err)
	}
	expectValue(t, be, "k", "first")
	must(t, be.Delete(ctx, "k"))
	ok, err = be.PutIfAbsent(ctx, "k", []byte("third"), time.Hour)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent after Delete = %v, %v; want true", ok, err)
	}
	expectValue(t, be, "k", "third")
}

func testTTL(t *testing.T, be store.Backend) {
	ctx := ctxT(t)
	const short = 100 * time.Millisecond
	must(t, be.Put(ctx, "long", []byte("l"), time.Hour))
	must(t, be.Put(ctx, "forever", []byte("f"), 0))
	// A Put without ttl over a key with one clears it.
	must(t, be.Put(ctx, "cleared", []byte("c"), short))
	must(t, be.Put(ctx, "cleared", []byte("c"), 0))
	must(t, be.Put(ctx, "short", []byte("s"), short))
	ok, err := be.PutIfAbsent(ctx, "nx", []byte("n"), short)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent = %v, %v", ok, err)
	}
	expectValue(t, be, "long", "l")

	for _, k := range []string{"short", "nx"} {
		eventuallyTrue(t, k+" expires", func() bool {
			_, err := be.Get(ctx, k)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get(%s): %v", k, err)
			}
			return errors.Is(err, store.ErrNotFound)
		})
	}
	ok, err = be.PutIfAbsent(ctx, "nx", []byte("again"), 0)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent over an expired key = %v, %v; want true", ok, err)
	}
	expectValue(t, be, "nx", "again")
	expectValue(t, be, "long", "l")
	expectValue(t, be, "forever", "f")
	expectValue(t, be, "cleared", "c")
}

func testValuesAreCopied(t *testing.T, be store.Backend) {
	ctx := ctxT(t)
	v := []byte("abc")
	must(t, be.Put(ctx, "k", v, 0))
	v[0] = 'X'
	got, err := be.Get(ctx, "k")
	must(t, err)
	got[1] = 'Y'
	expectValue(t, be, "k", "abc")
}

func testPing(t *testing.T, be store.Backend) {
	must(t, be.Ping(ctxT(t)))
}

// ---- Bus ----

func testPublishConsume(t *testing.T, be store.Backend) {
	const n = 200
	tr := newTracker()
	var want []store.Event
	for i := range n {
		ev := store.Event{Key: "k" + strconv.Itoa(i%10), Type: "t" + strconv.Itoa(i), Data: []byte{0, byte(i), 0xff, '\n'}}
		switch i {
		case 7:
			ev.Key = "" // no ordering asked for
		case 8:
			ev.ID = "caller-chosen-id"
		}
		want = append(want, ev)
	}
	// Start the consumer first, then publish.
	consume(t, be, "topic", "group", "c1", tr.handler("c1", nil))
	for _, ev := range want {
		publish(t, be, "topic", ev)
	}
	tr.wait(t, "all events", func() bool { return len(tr.ok) == n })

	byType := map[string]store.Event{}
	for _, d := range tr.ok {
		byType[d.ev.Type] = d.ev
	}
	for _, w := range want {
		got, ok := byType[w.Type]
		if !ok {
			t.Fatalf("event %s not delivered", w.Type)
		}
		if got.Key != w.Key || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("event %s: got key %q data %q, want %q %q", w.Type, got.Key, got.Data, w.Key, w.Data)
		}
		if w.ID != "" && got.ID != w.ID {
			t.Errorf("caller-chosen ID not kept: got %q, want %q", got.ID, w.ID)
		}
	}
	ids := map[string]bool{}
	for _, d := range tr.ok {
		if d.ev.ID == "" || ids[d.ev.ID] {
			t.Fatalf("event %s: empty or repeated ID %q", d.ev.Type, d.ev.ID)
		}
		ids[d.ev.ID] = true
	}
}

func testPublishBeforeFirstConsume(t *testing.T, be store.Backend) {
	for i := range 5 {
		publish(t, be, "early", store.Event{Key: "k", Type: strconv.Itoa(i)})
	}
	tr := newTracker()
	consume(t, be, "early", "group", "c1", tr.handler("c1", nil))
	tr.wait(t, "events published before the group existed", func() bool { return len(tr.ok) == 5 })
	for i, d := range tr.ok {
		if d.ev.Type != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %s: order of one Key not kept", i, d.ev.Type)
		}
	}
}

func testAckOnlyAfterSuccess(t *testing.T, be store.Backend) {
	const failFor = 250 * time.Millisecond
	var first time.Time
	tr := newTracker()
	h := tr.handler("c1", func(ev store.Event, attempt int) error {
		if ev.Type != "x" {
			return nil
		}
		if attempt == 1 {
			first = time.Now()
		}
		if time.Since(first) < failFor {
			return errors.New("not yet")
		}
		return nil
	})
	run := consume(t, be, "topic", "group", "c1", h)
	publish(t, be, "topic", store.Event{Key: "kx", Type: "x"})
	for i := range 3 {
		publish(t, be, "topic", store.Event{Key: "ky" + strconv.Itoa(i), Type: "y"})
	}
	tr.wait(t, "x to succeed", func() bool { return tr.succeeded("x") == 1 && tr.succeeded("y") == 3 })
	run.stop(t)
	if n := tr.attempts("x"); n < 2 || n > 12 {
		t.Fatalf("x was attempted %d times in about %v; want a few retries with backoff", n, failFor)
	}

	// Acknowledged events are not delivered again to a restarted consumer.
	tr2 := newTracker()
	consume(t, be, "topic", "group", "c1", tr2.handler("c1", nil))
	publish(t, be, "topic", store.Event{Key: "kx", Type: "sentinel"})
	tr2.wait(t, "sentinel", func() bool { return tr2.succeeded("sentinel") == 1 })
	if n := tr2.attempts("x") + tr2.attempts("y"); n != 0 {
		t.Fatalf("%d acknowledged events delivered again after restart", n)
	}
	if n := tr.attempts("x"); n != tr.failed("x")+1 {
		t.Fatalf("x delivered %d times after %d failures", n, tr.failed("x"))
	}
}

func testRestartGetsPending(t *testing.T, be store.Backend) {
	const n = 20
	tr := newTracker()
	run := consume(t, be, "topic", "group", "c1", tr.handler("c1", func(store.Event, int) error {
		return errors.New("down")
	}))
	for i := range n {
		publish(t, be, "topic", store.Event{Key: "k" + strconv.Itoa(i%3), Type: strconv.Itoa(i)})
	}
	// Each Key's head fails; the events behind it wait. Stop while failing.
	tr.wait(t, "first deliveries", func() bool { return tr.distinct() >= 3 })
	run.stop(t)
	// Newer events of the same keys: the restarted consumer must handle
	// its pending ones first for each key to stay in order.
	for i := n; i < n+6; i++ {
		publish(t, be, "topic", store.Event{Key: "k" + strconv.Itoa(i%3), Type: strconv.Itoa(i)})
	}

	tr2 := newTracker()
	consume(t, be, "topic", "group", "c1", tr2.handler("c1", nil))
	tr2.wait(t, "pending events after restart", func() bool { return tr2.distinct() == n+6 })
	checkKeyOrder(t, tr2)
}

func testClaimFromGoneConsumer(t *testing.T, be store.Backend) {
	const n = 10
	tr := newTracker()
	run := consume(t, be, "topic", "group", "c1", tr.handler("c1", func(store.Event, int) error {
		return errors.New("down")
	}))
	for i := range n {
		publish(t, be, "topic", store.Event{Key: "k" + strconv.Itoa(i), Type: strconv.Itoa(i)})
	}
	tr.wait(t, "c1 to hold every event", func() bool { return tr.distinct() == n })
	run.stop(t)
	stopped := time.Now()

	consume(t, be, "topic", "group", "c2", tr.handler("c2", nil))
	tr.wait(t, "c2 to claim c1's events", func() bool { return len(tr.ok) == n })
	if d := tr.ok[0].at.Sub(stopped); d < ClaimAfter/2 {
		t.Errorf("c2 took c1's pending events %v after c1 stopped; ClaimAfter is %v", d, ClaimAfter)
	}
	for _, d := range tr.ok {
		if d.consumer != "c2" {
			t.Fatalf("event %s handled by %s", d.ev.Type, d.consumer)
		}
	}
}

func testLiveConsumerKeepsPending(t *testing.T, be store.Backend) {
	tr := newTracker()
	var first time.Time
	var mu sync.Mutex
	fail := func(ev store.Event, attempt int) error {
		mu.Lock()
		defer mu.Unlock()
		if attempt == 1 {
			first = time.Now()
		}
		if time.Since(first) < 3*ClaimAfter {
			return errors.New("not yet")
		}
		return nil
	}
	consume(t, be, "topic", "group", "c1", tr.handler("c1", fail))
	consume(t, be, "topic", "group", "c2", tr.handler("c2", fail))
	publish(t, be, "topic", store.Event{Key: "k", Type: "x"})
	tr.wait(t, "x to succeed", func() bool { return tr.succeeded("x") == 1 })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	owners := map[string]bool{}
	for _, d := range tr.all {
		owners[d.consumer] = true
	}
	if len(owners) != 1 || tr.tries["x"] < 3 {
		t.Fatalf("x tried %d times by %v; want retries by one live consumer only", tr.tries["x"], owners)
	}
}

func testGroupMembersShare(t *testing.T, be store.Backend) {
	n := MaxWindow + 1000
	tr := newTracker()
	both := make(chan struct{})
	var once sync.Once
	var seen [2]atomic.Bool
	shareCtx := ctxT(t)
	member := func(i int, name string) store.Handler {
		return tr.handler(name, func(store.Event, int) error {
			seen[i].Store(true)
			if seen[1-i].Load() {
				once.Do(func() { close(both) })
			}
			// Hold the workers until the other member got something too:
			// a member that took everything would make this wait time out.
			select {
			case <-both:
			case <-shareCtx.Done():
			}
			return nil
		})
	}
	consume(t, be, "topic", "group", "c1", member(0, "c1"))
	consume(t, be, "topic", "group", "c2", member(1, "c2"))
	publishMany(t, be, "topic", n, func(i int) store.Event {
		return store.Event{Key: "k" + strconv.Itoa(i%300), Type: strconv.Itoa(i)}
	})
	tr.wait(t, "all events", func() bool { return tr.distinct() == n })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.all) != n {
		t.Errorf("%d deliveries for %d events", len(tr.all), n)
	}
	per := map[string]int{}
	for _, d := range tr.all {
		per[d.consumer]++
	}
	if per["c1"] == 0 || per["c2"] == 0 {
		t.Errorf("deliveries per member %v: want both to get events", per)
	}
}

func testGroupsEachGetAll(t *testing.T, be store.Backend) {
	const n = 300
	tr1, tr2 := newTracker(), newTracker()
	ready1, h1 := whenReady(tr1.handler("c", nil))
	ready2, h2 := whenReady(tr2.handler("c", nil))
	consume(t, be, "topic", "g1", "c", h1)
	consume(t, be, "topic", "g2", "c", h2)
	// A group is created by its first Consume, which runs in the
	// background: make sure both exist before counting on them.
	awaitReady(t, be, "topic", ready1, ready2)
	publishMany(t, be, "topic", n, func(i int) store.Event {
		return store.Event{Key: "k" + strconv.Itoa(i%17), Type: strconv.Itoa(i)}
	})
	for _, tr := range []*tracker{tr1, tr2} {
		tr.wait(t, "all events in each group", func() bool { return tr.distinct() == n })
		tr.mu.Lock()
		if len(tr.all) != n {
			t.Errorf("%d deliveries for %d events in one group", len(tr.all), n)
		}
		tr.mu.Unlock()
	}
}

func testKeyOrder(t *testing.T, be store.Backend) {
	const keys, per = 16, 40
	type keyState struct {
		busy atomic.Bool
		mu   sync.Mutex
		next int
	}
	states := map[string]*keyState{}
	for k := range keys {
		states[key(k)] = &keyState{}
	}
	var mu sync.Mutex
	var problems []string
	problem := func(f string, a ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	tr := newTracker()
	h := tr.handler("c1", func(ev store.Event, attempt int) error {
		ks := states[ev.Key]
		if !ks.busy.CompareAndSwap(false, true) {
			problem("two events of %s handled at once", ev.Key)
			return nil
		}
		defer ks.busy.Store(false)
		seq, _ := strconv.Atoi(ev.Type[strings.IndexByte(ev.Type, '/')+1:])
		for range 5 {
			runtime.Gosched() // let other keys interleave
		}
		if seq%7 == 3 && attempt == 1 {
			return errors.New("transient") // must not let the next event of the key overtake
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if seq != ks.next {
			problem("%s: got event %d, want %d", ev.Key, seq, ks.next)
		}
		ks.next = seq + 1
		return nil
	})
	for i := range per {
		for k := range keys {
			publish(t, be, "topic", store.Event{Key: key(k), Type: fmt.Sprintf("%s/%d", key(k), i)})
		}
	}
	consume(t, be, "topic", "group", "c1", h)
	tr.wait(t, "all events", func() bool { return len(tr.ok) == keys*per })
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%d ordering problems, first: %s", len(problems), strings.Join(problems[:min(5, len(problems))], "; "))
	}
}

func key(i int) string { return fmt.Sprintf("conv-%02d", i) }

func testKeysRunInParallel(t *testing.T, be store.Backend) {
	started := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	other := map[string]string{"a": "b", "b": "a"}
	wait := ctxT(t)
	tr := newTracker()
	consume(t, be, "topic", "group", "c1", tr.handler("c1", func(ev store.Event, attempt int) error {
		if attempt == 1 {
			close(started[ev.Key])
		}
		select {
		case <-started[other[ev.Key]]:
			return nil
		case <-wait.Done():
			return nil
		}
	}))
	publish(t, be, "topic", store.Event{Key: "a", Type: "a"})
	publish(t, be, "topic", store.Event{Key: "b", Type: "b"})
	tr.wait(t, "both events", func() bool { return len(tr.ok) == 2 })
	if wait.Err() != nil {
		t.Fatalf("events of different keys did not run at the same time")
	}
}

func testDrainOnCancel(t *testing.T, be store.Backend) {
	release := make(chan struct{})
	xStarted := make(chan struct{})
	var xReturned atomic.Bool
	tr := newTracker()
	run := consume(t, be, "topic", "group", "c1", tr.handler("c1", func(ev store.Event, _ int) error {
		if ev.Type == "x" {
			close(xStarted)
			<-release // ignores ctx: a handler finishing its job
			xReturned.Store(true)
		}
		return nil
	}))
	publish(t, be, "topic", store.Event{Key: "k", Type: "x"})
	for i := range 3 {
		publish(t, be, "topic", store.Event{Key: "k", Type: "y" + strconv.Itoa(i)})
	}
	select {
	case <-xStarted:
	case <-time.After(eventually):
		t.Fatal("x not delivered")
	}
	run.cancel()
	select {
	case <-run.done:
		t.Fatal("Consume returned while a handler was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := run.stop(t); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if !xReturned.Load() {
		t.Fatal("Consume returned before the handler in flight")
	}
	if n := tr.successes(); n != 1 {
		t.Fatalf("%d events handled; want only x (nothing new once cancelled)", n)
	}

	publish(t, be, "topic", store.Event{Key: "k", Type: "z"})
	tr2 := newTracker()
	consume(t, be, "topic", "group", "c1", tr2.handler("c1", nil))
	tr2.wait(t, "the events left by the cancelled consumer", func() bool { return len(tr2.ok) == 4 })
	for i, d := range tr2.ok {
		if want := []string{"y0", "y1", "y2", "z"}[i]; d.ev.Type != want {
			t.Fatalf("after restart got %s at %d, want %s: pending events first", d.ev.Type, i, want)
		}
	}
	if tr2.attempts("x") != 0 {
		t.Fatal("x, handled while draining, was not acknowledged")
	}
}

func testDeduplicate(t *testing.T, be store.Backend) {
	const n = 5
	var mu sync.Mutex
	inner := map[string]int{}
	dedup := store.Deduplicate(be, "group", time.Minute, func(_ context.Context, ev store.Event) error {
		mu.Lock()
		inner[ev.ID]++
		mu.Unlock()
		return nil
	})
	tr := newTracker()
	consume(t, be, "topic", "group", "c1", tr.handler("c1", func(ev store.Event, attempt int) error {
		if err := dedup(context.Background(), ev); err != nil {
			return err
		}
		if attempt == 1 {
			return errors.New("acknowledgement lost") // handled, but delivered again
		}
		return nil
	}))
	for i := range n {
		publish(t, be, "topic", store.Event{Key: "k" + strconv.Itoa(i), Type: strconv.Itoa(i)})
	}
	tr.wait(t, "redeliveries", func() bool { return len(tr.ok) == n })
	mu.Lock()
	defer mu.Unlock()
	for id, c := range inner {
		if c != 1 {
			t.Errorf("event %s handled %d times behind Deduplicate", id, c)
		}
	}
	if len(inner) != n {
		t.Errorf("%d events handled, want %d", len(inner), n)
	}
}

func testClose(t *testing.T, be store.Backend) {
	tr := newTracker()
	run := consume(t, be, "topic", "group", "c1", tr.handler("c1", nil))
	publish(t, be, "topic", store.Event{Type: "x"})
	tr.wait(t, "x", func() bool { return len(tr.ok) == 1 })
	must(t, be.Close())
	select {
	case err := <-run.done:
		run.err, run.stopped = err, true
		if err != nil {
			t.Fatalf("Consume after Close: %v", err)
		}
	case <-time.After(eventually):
		t.Fatal("Consume still running after Close")
	}
	err := be.Publish(ctxT(t), "topic", store.Event{Type: "late"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Publish after Close = %v, want ErrUnavailable", err)
	}
	must(t, be.Close())
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func expectValue(t *testing.T, be store.Backend, k, want string) {
	t.Helper()
	got, err := be.Get(ctxT(t), k)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%s) = %q, want %q", k, got, want)
	}
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a clock-driven state: nothing to wait on
	}
}

func publish(t *testing.T, be store.Backend, topic string, ev store.Event) {
	t.Helper()
	if err := be.Publish(ctxT(t), topic, ev); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// publishMany publishes n events from a few goroutines, keeping each
// goroutine's own order.
func publishMany(t *testing.T, be store.Backend, topic string, n int, ev func(i int) store.Event) {
	t.Helper()
	const workers = 8
	ctx := ctxT(t)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := be.Publish(ctx, topic, ev(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

const warmup = "storetest-warmup"

// whenReady wraps h to close the returned channel at the first warm-up
// event, which h does not see.
func whenReady(h store.Handler) (<-chan struct{}, store.Handler) {
	ready := make(chan struct{})
	var once sync.Once
	return ready, func(ctx context.Context, ev store.Event) error {
		if ev.Type == warmup {
			once.Do(func() { close(ready) })
			return nil
		}
		return h(ctx, ev)
	}
}

// awaitReady publishes warm-up events until every consumer got one.
func awaitReady(t *testing.T, be store.Backend, topic string, ready ...<-chan struct{}) {
	t.Helper()
	deadline := time.After(eventually)
	for _, r := range ready {
		for waiting := true; waiting; {
			publish(t, be, topic, store.Event{Type: warmup})
			select {
			case <-r:
				waiting = false
			case <-time.After(20 * time.Millisecond):
			case <-deadline:
				t.Fatal("consumers not ready")
			}
		}
	}
}

type consumerRun struct {
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	err     error
}

// consume runs Consume in the background; it is stopped when t ends.
func consume(t *testing.T, be store.Backend, topic, group, name string, h store.Handler) *consumerRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &consumerRun{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- be.Consume(ctx, topic, group, name, h) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the consumer and waits for Consume to return.
func (r *consumerRun) stop(t *testing.T) error {
	t.Helper()
	if r.stopped {
		return r.err
	}
	r.cancel()
	select {
	case r.err = <-r.done:
		r.stopped = true
	case <-time.After(eventually):
		t.Fatalf("Consume did not return after cancel")
	}
	return r.err
}

type delivery struct {
	consumer string
	ev       store.Event
	err      error
	at       time.Time
}

// tracker records deliveries and lets the test wait for a condition on
// them without sleeping.
type tracker struct {
	mu      sync.Mutex
	changed chan struct{}
	all     []delivery // every call, in completion order
	ok      []delivery // successful calls
	tries   map[string]int
	fails   map[string]int
}

func newTracker() *tracker {
	return &tracker{changed: make(chan struct{}), tries: map[string]int{}, fails: map[string]int{}}
}

// handler records each call; fail, when not nil, decides its outcome from
// the event and the attempt number (1 for the first delivery of this
// event type to this tracker).
func (tr *tracker) handler(name string, fail func(ev store.Event, attempt int) error) store.Handler {
	return func(_ context.Context, ev store.Event) error {
		tr.mu.Lock()
		tr.tries[ev.Type]++
		attempt := tr.tries[ev.Type]
		tr.mu.Unlock()
		var err error
		if fail != nil {
			err = fail(ev, attempt)
		}
		tr.mu.Lock()
		d := delivery{consumer: name, ev: ev, err: err, at: time.Now()}
		tr.all = append(tr.all, d)
		if err == nil {
			tr.ok = append(tr.ok, d)
		} else {
			tr.fails[ev.Type]++
		}
		close(tr.changed)
		tr.changed = make(chan struct{})
		tr.mu.Unlock()
		return err
	}
}

func (tr *tracker) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(eventually)
	defer timer.Stop()
	for {
		tr.mu.Lock()
		done, ch := cond(), tr.changed
		tr.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			tr.mu.Lock()
			t.Fatalf("timed out waiting for %s (%d calls, %d successful)", what, len(tr.all), len(tr.ok))
		}
	}
}

func (tr *tracker) attempts(typ string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.tries[typ]
}

func (tr *tracker) failed(typ string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.fails[typ]
}

func (tr *tracker) successes() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.ok)
}

// succeeded and distinct are called with tr.mu held (conditions of wait).

func (tr *tracker) succeeded(typ string) int {
	n := 0
	for _, d := range tr.ok {
		if d.ev.Type == typ {
			n++
		}
	}
	return n
}

func (tr *tracker) distinct() int {
	seen := map[string]bool{}
	for _, d := range tr.all {
		seen[d.ev.ID] = true
	}
	return len(seen)
}

// checkKeyOrder fails if the successful deliveries of one Key are not in
// the order of their (numeric) types.
func checkKeyOrder(t *testing.T, tr *tracker) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	last := map[string]int{}
	for _, d := range tr.ok {
		n, _ := strconv.Atoi(d.ev.Type)
		if prev, ok := last[d.ev.Key]; ok && n < prev {
			t.Fatalf("key %s: event %d after %d", d.ev.Key, n, prev)
		}
		last[d.ev.Key] = n
	}
}

// BenchmarkBus measures publish-to-handled throughput: publishers
// goroutines publish b.N events over 1024 keys to a topic that one consumer
// (default options) handles with a trivial handler. It reports events/s
// (wall clock) and events/cpu-s (per second of this process' CPU time,
// which is steadier on a busy machine; a Redis server's own CPU is not
// counted).
func BenchmarkBus(b *testing.B, be store.Backend, publishers int) {
	topic := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), b.N)
	n := int64(b.N)
	var got atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		consumed <- be.Consume(ctx, topic, "bench", "c1", func(context.Context, store.Event) error {
			if got.Add(1) == n {
				close(done)
			}
			return nil
		})
	}()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "conv-" + strconv.Itoa(i)
	}
	data := bytes.Repeat([]byte("x"), 64)

	b.ResetTimer()
	start, cpuStart := time.Now(), cpuTime()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < b.N; i += publishers {
				ev := store.Event{Key: keys[i%len(keys)], Type: "message", Data: data}
				if err := be.Publish(ctx, topic, ev); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("Publish: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events handled", got.Load(), n)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpuStart
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
	cancel()
	if err := <-consumed; err != nil {
		b.Fatalf("Consume: %v", err)
	}
}
