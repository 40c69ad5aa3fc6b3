// Package dispatch runs the handlers of one Bus consumer on a pool of
// workers. Events with the same Key are handled one at a time, in the order
// they were submitted; events with different Keys run in parallel. A failed
// event is retried after a backoff (doubling from MinBackoff to MaxBackoff)
// and the events queued behind it under the same Key wait for it, so a
// failure never reorders a Key. Other Keys carry on meanwhile.
//
// memstore and redisstore both use it; they own where events come from and
// what acknowledging one means. It must not know about either.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/parleygw/parley/shared/store"
)

// Defaults for the zero values of Options.
const (
	DefaultWorkers    = 32
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Options tunes a Dispatcher. The zero value is usable.
type Options struct {
	// Workers is the number of handlers that may run at once (default 32).
	Workers int
	// MinBackoff is the wait before the first retry of a failed event
	// (default 50ms); it doubles on each failure up to MaxBackoff (default 5s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// TrackRefs keeps the set of refs held: Submit then skips an item whose
	// ref is already held, and Refs lists them.
	TrackRefs bool
	// Logger receives handler failures; nil discards them.
	Logger *slog.Logger
}

// Item is one event with the backend's reference to it (what it needs to
// acknowledge it).
type Item[R comparable] struct {
	Ref   R
	Event store.Event
}

type qstate uint8

const (
	stIdle    qstate = iota // not scheduled: empty, or stopping
	stReady                 // in the ready list
	stRunning               // its head item is being handled
	stDelayed               // its head item failed; waiting for the retry timer
)

// queue holds the items of one Key not yet acknowledged, oldest first.
type queue[R comparable] struct {
	key      string
	items    []Item[R]
	head     int
	state    qstate
	failures int
	timer    *time.Timer
}

// Dispatcher schedules submitted items onto workers. Create it with New,
// start it with Run, feed it with Submit.
type Dispatcher[R comparable] struct {
	h   store.Handler
	ack func(R)
	opt Options
	log *slog.Logger

	mu       sync.Mutex
	cond     sync.Cond
	queues   map[string]*queue[R]
	ready    []*queue[R] // FIFO from readyHd
	readyHd  int
	free     []*queue[R]
	held     map[R]struct{}
	n        int
	idle     int
	stopping bool
	anon     uint64
	roomAt   int // WaitRoom is waiting for n <= roomAt; -1 when nobody waits
	room     chan struct{}
}

// New returns a Dispatcher that calls h for each item and ack with its ref
// once h returned nil. ack may be nil; it is called from worker goroutines
// and must not call back into the Dispatcher.
func New[R comparable](h store.Handler, ack func(R), opt Options) *Dispatcher[R] {
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = opt.MinBackoff
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher[R]{
		h:      h,
		ack:    ack,
		opt:    opt,
		log:    log,
		queues: make(map[string]*queue[R]),
		room:   make(chan struct{}, 1),
		roomAt: -1,
	}
	if opt.TrackRefs {
		d.held = make(map[R]struct{})
	}
	if ack == nil {
		d.ack = func(R) {}
	}
	d.cond.L = &d.mu
	return d
}

// Run starts the workers and blocks until ctx is done and the handlers in
// flight have returned. No item is started once ctx is done; what was not
// acknowledged is then available from Remaining. Handlers receive ctx.
// Run must be called once.
func (d *Dispatcher[R]) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range d.opt.Workers {
		wg.Go(func() { d.worker(ctx) })
	}
	<-ctx.Done()
	d.mu.Lock()
	d.stopping = true
	for _, q := range d.queues {
		if q.timer != nil {
			q.timer.Stop()
			q.timer = nil
		}
		if q.state != stRunning {
			q.state = stIdle
		}
	}
	d.ready, d.readyHd = nil, 0
	d.cond.Broadcast()
	d.mu.Unlock()
	wg.Wait()
}

// Submit queues items behind those already held under the same Key and
// reports how many it took (with TrackRefs, an item whose ref is already
// held is skipped). Items submitted after Run stopped are kept for
// Remaining. Submit never blocks on handlers; use WaitRoom to bound what is
// held.
func (d *Dispatcher[R]) Submit(items ...Item[R]) int {
	d.mu.Lock()
	added, woken := 0, 0
	for _, it := range items {
		if d.held != nil {
			if _, dup := d.held[it.Ref]; dup {
				continue
			}
			d.held[it.Ref] = struct{}{}
		}
		key := it.Event.Key
		if key == "" {
			// No ordering asked for: a queue of its own.
			d.anon++
			key = "\x00" + strconv.FormatUint(d.anon, 36)
		}
		q := d.queues[key]
		if q == nil {
			q = d.newQueue(key)
			d.queues[key] = q
		}
		if q.head > 0 && len(q.items) == cap(q.items) {
			// A Key that never empties: slide down instead of growing.
			n := copy(q.items, q.items[q.head:])
			clear(q.items[n:])
			q.items, q.head = q.items[:n], 0
		}
		q.items = append(q.items, it)
		d.n++
		added++
		if q.state == stIdle && !d.stopping {
			q.state = stReady
			d.ready = append(d.ready, q)
			if woken < d.idle {
				d.cond.Signal()
				woken++
			}
		}
	}
	d.mu.Unlock()
	return added
}

// Held is the number of items submitted and not yet acknowledged.
func (d *Dispatcher[R]) Held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// Refs lists the refs held (only with TrackRefs).
func (d *Dispatcher[R]) Refs() []R {
	d.mu.Lock()
	defer d.mu.Unlock()
	refs := make([]R, 0, len(d.held))
	for r := range d.held {
		refs = append(refs, r)
	}
	return refs
}

// WaitRoom blocks until at most limit items are held, or ctx is done.
func (d *Dispatcher[R]) WaitRoom(ctx context.Context, limit int) error {
	for {
		d.mu.Lock()
		if d.n <= limit {
			d.roomAt = -1
			d.mu.Unlock()
			return nil
		}
		d.roomAt = limit
		d.mu.Unlock()
		select {
		case <-d.room:
		case <-ctx.Done():
			d.mu.Lock()
			d.roomAt = -1
			d.mu.Unlock()
			return ctx.Err()
		}
	}
}

// Remaining returns, once Run has returned, the items not acknowledged, in
// submission order per Key, and forgets them.
func (d *Dispatcher[R]) Remaining() []Item[R] {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Item[R]
	for k, q := range d.queues {
		out = append(out, q.items[q.head:]...)
		delete(d.queues, k)
	}
	d.n = 0
	clear(d.held)
	return out
}

func (d *Dispatcher[R]) newQueue(key string) *queue[R] {
	if n := len(d.free); n > 0 {
		q := d.free[n-1]
		d.free = d.free[:n-1]
		q.key = key
		return q
	}
	return &queue[R]{key: key}
}

func (d *Dispatcher[R]) worker(ctx context.Context) {
	var (
		cur     *queue[R]
		err     error
		ackRef  R
		haveAck bool
	)
	d.mu.Lock()
	for {
		if cur != nil {
			ackRef, haveAck = d.finishLocked(cur, err)
			cur = nil
		}
		for !d.stopping && d.readyHd == len(d.ready) {
			if haveAck {
				// Acknowledge before sleeping, not after the next event.
				d.mu.Unlock()
				d.ack(ackRef)
				haveAck = false
				d.mu.Lock()
				continue
			}
			d.idle++
			d.cond.Wait()
			d.idle--
		}
		if d.stopping {
			d.mu.Unlock()
			if haveAck {
				d.ack(ackRef)
			}
			return
		}
		cur = d.popReadyLocked()
		cur.state = stRunning
		it := cur.items[cur.head]
		attempt := cur.failures + 1
		d.mu.Unlock()
		if haveAck {
			d.ack(ackRef)
			haveAck = false
		}
		err = d.call(ctx, it.Event)
		if err != nil {
			lvl := slog.LevelDebug
			if attempt == 1 {
				lvl = slog.LevelWarn
			}
			d.log.Log(ctx, lvl, "bus handler failed; will retry",
				"id", it.Event.ID, "key", it.Event.Key, "type", it.Event.Type,
				"attempt", attempt, "err", err)
		}
		d.mu.Lock()
	}
}

// finishLocked records the outcome of q's head item and reschedules q. It
// returns the ref to acknowledge, if any.
func (d *Dispatcher[R]) finishLocked(q *queue[R], err error) (ref R, ok bool) {
	if err != nil {
		q.failures++
		if d.stopping {
			q.state = stIdle
			return ref, false
		}
		q.state = stDelayed
		backoff := d.opt.MinBackoff << min(q.failures-1, 30)
		if backoff <= 0 || backoff > d.opt.MaxBackoff {
			backoff = d.opt.MaxBackoff
		}
		q.timer = time.AfterFunc(backoff, func() { d.retry(q) })
		return ref, false
	}
	it := q.items[q.head]
	q.items[q.head] = Item[R]{}
	q.head++
	q.failures = 0
	d.n--
	if d.held != nil {
		delete(d.held, it.Ref)
	}
	if d.n <= d.roomAt {
		d.roomAt = -1
		select {
		case d.room <- struct{}{}:
		default:
		}
	}
	switch {
	case q.head == len(q.items):
		delete(d.queues, q.key)
		q.items, q.head, q.state = q.items[:0], 0, stIdle
		if cap(q.items) <= 64 {
			d.free = append(d.free, q)
		}
	case d.stopping:
		q.state = stIdle
	default:
		q.state = stReady
		d.ready = append(d.ready, q)
	}
	return it.Ref, true
}

// popReadyLocked takes the oldest ready queue; the list must not be empty.
func (d *Dispatcher[R]) popReadyLocked() *queue[R] {
	q := d.ready[d.readyHd]
	d.ready[d.readyHd] = nil
	d.readyHd++
	switch {
	case d.readyHd == len(d.ready):
		d.ready, d.readyHd = d.ready[:0], 0
	case d.readyHd >= 1024 && d.readyHd*2 >= len(d.ready):
		// Never empty under steady load: slide down instead of growing.
		n := copy(d.ready, d.ready[d.readyHd:])
		clear(d.ready[n:])
		d.ready, d.readyHd = d.ready[:n], 0
	}
	return q
}

func (d *Dispatcher[R]) retry(q *queue[R]) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q.state != stDelayed || d.stopping {
		return
	}
	q.timer = nil
	q.state = stReady
	d.ready = append(d.ready, q)
	if d.idle > 0 {
		d.cond.Signal()
	}
}

func (d *Dispatcher[R]) call(ctx context.Context, ev store.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("bus handler panicked", "id", ev.ID, "key", ev.Key, "type", ev.Type,
				"panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("dispatch: handler panicked: %v", p)
		}
	}()
	return d.h(ctx, ev)
}
