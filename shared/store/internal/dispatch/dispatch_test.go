package dispatch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleygw/parley/shared/store"
)

const eventually = 10 * time.Second

func items(key string, refs ...int) []Item[int] {
	var out []Item[int]
	for _, r := range refs {
		out = append(out, Item[int]{Ref: r, Event: store.Event{ID: key, Key: key}})
	}
	return out
}

type run struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func start[R comparable](d *Dispatcher[R]) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); d.Run(ctx) }()
	return r
}

func (r *run) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(eventually):
		t.Fatal("Run did not return")
	}
}

// TestRetryKeepsKeyOrder: a failing event is retried with growing backoff
// while its Key waits; other Keys go on; acks come once per success.
func TestRetryKeepsKeyOrder(t *testing.T) {
	var mu sync.Mutex
	var order []int
	var attempts []time.Time
	acked := make(chan int, 100)
	fails := 3
	d := New[int](func(_ context.Context, ev store.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if ev.Key == "a" && fails > 0 && len(order) == 0 {
			attempts = append(attempts, time.Now())
			fails--
			return errors.New("not yet")
		}
		return nil
	}, func(r int) { acked <- r }, Options{Workers: 4, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	// Record order through acks of key a (1, 2, 3) and key b (10).
	r := start(d)
	defer r.stop(t)
	d.Submit(items("a", 1, 2, 3)...)
	d.Submit(items("b", 10)...)
	var got []int
	for len(got) < 4 {
		select {
		case ref := <-acked:
			got = append(got, ref)
			if ref < 10 {
				mu.Lock()
				order = append(order, ref)
				mu.Unlock()
			}
		case <-time.After(eventually):
			t.Fatalf("acked %v", got)
		}
	}
	if got[0] != 10 {
		t.Errorf("key b waited for key a: acks %v", got)
	}
	if !slices.Equal(order, []int{1, 2, 3}) {
		t.Errorf("key a handled in order %v", order)
	}
	// Gaps: >= 20ms, then >= 40ms (doubling), and the cap is 50ms.
	if len(attempts) != 3 {
		t.Fatalf("%d failed attempts", len(attempts))
	}
	if g := attempts[1].Sub(attempts[0]); g < 20*time.Millisecond {
		t.Errorf("first retry after %v", g)
	}
	if g := attempts[2].Sub(attempts[1]); g < 40*time.Millisecond {
		t.Errorf("second retry after %v", g)
	}
	if d.Held() != 0 {
		t.Errorf("Held = %d after all acked", d.Held())
	}
}

// TestStopLeavesRemaining: after Run returns, what was not acknowledged is
// in Remaining, in order per Key; nothing starts after cancel.
func TestStopLeavesRemaining(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	d := New[int](func(_ context.Context, ev store.Event) error {
		if ev.Key == "slow" {
			close(started)
			<-release
			return nil
		}
		return errors.New("always fails")
	}, nil, Options{Workers: 2, MinBackoff: time.Hour})
	r := start(d)
	d.Submit(items("slow", 1, 2, 3)...)
	d.Submit(items("failing", 4, 5)...)
	<-started
	r.cancel()
	close(release)
	r.stop(t)
	d.Submit(items("late", 6)...) // after stop: kept, not run
	rest := d.Remaining()
	var refs []int
	for _, it := range rest {
		refs = append(refs, it.Ref)
	}
	slices.Sort(refs)
	if !slices.Equal(refs, []int{2, 3, 4, 5, 6}) {
		t.Fatalf("Remaining refs %v, want [2 3 4 5 6]", refs)
	}
	for i := 1; i < len(rest); i++ {
		if rest[i].Event.Key == rest[i-1].Event.Key && rest[i].Ref < rest[i-1].Ref {
			t.Fatalf("Remaining out of order: %v", rest)
		}
	}
}

func TestPanicIsAFailure(t *testing.T) {
	calls := 0
	acked := make(chan int, 1)
	d := New[int](func(_ context.Context, ev store.Event) error {
		calls++
		if calls == 1 {
			panic("boom")
		}
		return nil
	}, func(r int) { acked <- r }, Options{Workers: 1, MinBackoff: time.Millisecond})
	r := start(d)
	defer r.stop(t)
	d.Submit(items("k", 1)...)
	select {
	case <-acked:
	case <-time.After(eventually):
		t.Fatal("not retried after a panic")
	}
	if calls != 2 {
		t.Fatalf("%d calls", calls)
	}
}

func TestTrackRefsAndWaitRoom(t *testing.T) {
	release := make(chan struct{})
	d := New[int](func(context.Context, store.Event) error {
		<-release
		return nil
	}, nil, Options{Workers: 1, TrackRefs: true})
	r := start(d)
	defer r.stop(t)
	if n := d.Submit(items("k", 1, 2)...); n != 2 {
		t.Fatalf("Submit took %d", n)
	}
	if n := d.Submit(items("k", 2, 3)...); n != 1 {
		t.Fatalf("Submit of a held ref took %d, want 1 (ref 3)", n)
	}
	refs := d.Refs()
	slices.Sort(refs)
	if !slices.Equal(refs, []int{1, 2, 3}) {
		t.Fatalf("Refs %v", refs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.WaitRoom(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRoom with 3 held, limit 2: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- d.WaitRoom(context.Background(), 1) }()
	close(release)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(eventually):
		t.Fatal("WaitRoom did not return when room appeared")
	}
}

// TestBusyKeyStaysSmall: a Key that never empties and a ready list that
// never drains do not grow without bound.
func TestBusyKeyStaysSmall(t *testing.T) {
	step := make(chan struct{})
	d := New[int](func(context.Context, store.Event) error {
		<-step
		return nil
	}, nil, Options{Workers: 1})
	r := start(d)
	defer r.stop(t)
	d.Submit(items("k", 0, 1, 2, 3)...)
	for i := 4; i < 20000; i++ {
		d.Submit(items("k", i)...)
		step <- struct{}{} // one handled for one submitted: never empty
	}
	d.mu.Lock()
	q := d.queues["k"]
	c, rc := cap(q.items), cap(d.ready)
	d.mu.Unlock()
	close(step)
	if c > 64 || rc > 2048 {
		t.Fatalf("queue capacity %d, ready list capacity %d after 20000 events", c, rc)
	}
}
