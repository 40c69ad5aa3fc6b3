package memstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/internal/dispatch"
)

// item is an event with its sequence number in its topic (publish order).
type item = dispatch.Item[uint64]

// topic holds the groups of one topic. One mutex guards the topic, its
// groups and their members.
type topic struct {
	mu      sync.Mutex
	seq     uint64
	groups  map[string]*group
	backlog fifo // published while the topic had no group yet
}

type group struct {
	queue   fifo // not yet given to a consumer
	members map[string]*member
	waiters []chan struct{} // feeders sleeping until something arrives
}

// member is a consumer name of a group.
type member struct {
	active int       // Consume calls running under this name
	parked []item    // left unacknowledged when the last one returned
	goneAt time.Time // when the last one returned
}

var errBadArgs = errors.New("memstore: topic, group and consumer must not be empty and the handler not nil")

// Publish queues ev on topic for every group of the topic and returns at
// once. An empty ev.ID is replaced by a unique one; a caller-set ID is kept
// (so a publisher may retry with the same ID and let receivers
// de-duplicate). ev.Data is copied. Events published to a topic before its
// first group exists are kept and go to the first group created; a group
// created later only gets what is published after it.
func (b *Backend) Publish(ctx context.Context, topicName string, ev store.Event) error {
	if b.closed.Load() {
		return fmt.Errorf("memstore: publish to %q: %w", topicName, errClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: publish to %q: %w", topicName, err)
	}
	if ev.ID == "" {
		ev.ID = b.newID()
	}
	ev.Data = bytes.Clone(ev.Data)
	t := b.topic(topicName)
	t.mu.Lock()
	t.seq++
	it := item{Ref: t.seq, Event: ev}
	if len(t.groups) == 0 {
		t.backlog.push(it)
	}
	for _, g := range t.groups {
		g.queue.push(it)
		g.wakeOneLocked()
	}
	t.mu.Unlock()
	return nil
}

// Consume implements store.Bus. The group is created by its first Consume
// and gets the events published from then on (plus, for the first group of
// a topic, those published before any group existed; unlike redisstore, a
// later group does not get older events). Each event goes to one consumer
// of the group, in batches of up to Options.Window. Events of a failed handler are retried by the same
// consumer after a backoff. When Consume returns, the events it held and
// had not acknowledged (including those not started) are kept for the
// consumer name: a new Consume under that name gets them before anything
// else; once the name has been gone for ClaimAfter, any other consumer of
// the group takes them. Handlers receive a context that ends with ctx.
//
// Consume returns nil once ctx is done (or the Backend closed) and the
// handlers in flight have returned.
func (b *Backend) Consume(ctx context.Context, topicName, groupName, consumer string, h store.Handler) error {
	if topicName == "" || groupName == "" || consumer == "" || h == nil {
		return errBadArgs
	}
	b.life.Lock()
	if b.closed.Load() {
		b.life.Unlock()
		return fmt.Errorf("memstore: consume %q: %w", topicName, errClosed)
	}
	b.consumer.Add(1)
	b.life.Unlock()
	defer b.consumer.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	t := b.topic(topicName)
	t.mu.Lock()
	g := t.groupLocked(groupName)
	m := g.members[consumer]
	if m == nil {
		m = &member{}
		g.members[consumer] = m
	}
	m.active++
	pending := m.parked
	m.parked = nil
	t.mu.Unlock()

	log := b.log.With("topic", topicName, "group", groupName, "consumer", consumer)
	d := dispatch.New[uint64](h, nil, b.dispatchOptions(log))
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	d.Submit(pending...)
	b.feed(ctx, t, g, consumer, d)
	<-done

	rest := d.Remaining()
	t.mu.Lock()
	m.active--
	if len(rest) > 0 {
		m.parked = append(m.parked, rest...)
		slices.SortFunc(m.parked, func(a, b item) int { return cmp.Compare(a.Ref, b.Ref) })
	}
	if m.active == 0 {
		m.goneAt = time.Now()
		if len(m.parked) == 0 {
			delete(g.members, consumer)
		}
	}
	// Others may now have something to claim later: let them rearm.
	for len(g.waiters) > 0 {
		g.wakeOneLocked()
	}
	t.mu.Unlock()
	return nil
}

// feed moves events from the group (and from consumers gone for
// ClaimAfter) to d, keeping at most Window held, until ctx is done.
func (b *Backend) feed(ctx context.Context, t *topic, g *group, consumer string, d *dispatch.Dispatcher[uint64]) {
	wake := make(chan struct{}, 1)
	var batch []item
	for {
		// Refill in batches: wait until a quarter of the window is free.
		if d.WaitRoom(ctx, b.opt.Window-max(b.opt.Window/4, 1)) != nil {
			return
		}
		room := b.opt.Window - d.Held()
		now := time.Now()
		t.mu.Lock()
		batch = g.claimLocked(batch[:0], consumer, now, b.opt.ClaimAfter)
		batch = g.queue.popN(batch, room)
		if len(batch) == 0 {
			next := g.nextClaimLocked(consumer, b.opt.ClaimAfter)
			g.waiters = append(g.waiters, wake)
			t.mu.Unlock()
			var (
				tm    *time.Timer
				timer <-chan time.Time
			)
			if !next.IsZero() {
				tm = time.NewTimer(time.Until(next))
				timer = tm.C
			}
			select {
			case <-wake:
			case <-timer:
			case <-ctx.Done():
			}
			if tm != nil {
				tm.Stop()
			}
			t.mu.Lock()
			g.removeWaiterLocked(wake)
			t.mu.Unlock()
			select { // drop a wake-up sent meanwhile
			case <-wake:
			default:
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if g.queue.len() > 0 && len(g.waiters) > 0 {
			g.wakeOneLocked() // more than this consumer took: share it
		}
		t.mu.Unlock()
		d.Submit(batch...)
		clear(batch)
	}
}

func (b *Backend) topic(name string) *topic {
	b.busMu.RLock()
	t := b.topics[name]
	b.busMu.RUnlock()
	if t != nil {
		return t
	}
	b.busMu.Lock()
	defer b.busMu.Unlock()
	if t = b.topics[name]; t == nil {
		t = &topic{groups: make(map[string]*group)}
		b.topics[name] = t
	}
	return t
}

func (t *topic) groupLocked(name string) *group {
	g := t.groups[name]
	if g == nil {
		g = &group{members: make(map[string]*member)}
		if len(t.groups) == 0 {
			g.queue, t.backlog = t.backlog, fifo{}
		}
		t.groups[name] = g
	}
	return g
}

func (g *group) wakeOneLocked() {
	n := len(g.waiters)
	if n == 0 {
		return
	}
	w := g.waiters[n-1]
	g.waiters = g.waiters[:n-1]
	select {
	case w <- struct{}{}:
	default:
	}
}

func (g *group) removeWaiterLocked(w chan struct{}) {
	if i := slices.Index(g.waiters, w); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
	}
}

// claimLocked appends to dst the parked events of members other than me
// that have been gone for claimAfter, and forgets them there.
func (g *group) claimLocked(dst []item, me string, now time.Time, claimAfter time.Duration) []item {
	start := len(dst)
	for name, m := range g.members {
		if name == me || m.active > 0 || len(m.parked) == 0 || now.Sub(m.goneAt) < claimAfter {
			continue
		}
		dst = append(dst, m.parked...)
		delete(g.members, name)
	}
	if len(dst) > start {
		slices.SortFunc(dst[start:], func(a, b item) int { return cmp.Compare(a.Ref, b.Ref) })
	}
	return dst
}

// nextClaimLocked is when claimLocked will next find something for me, or
// the zero time.
func (g *group) nextClaimLocked(me string, claimAfter time.Duration) time.Time {
	var next time.Time
	for name, m := range g.members {
		if name == me || m.active > 0 || len(m.parked) == 0 {
			continue
		}
		if at := m.goneAt.Add(claimAfter); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}
