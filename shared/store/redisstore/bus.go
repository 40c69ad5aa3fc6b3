package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/internal/dispatch"
)

// Stream entry fields.
const (
	fID   = "id"
	fKey  = "key"
	fType = "type"
	fData = "data"
)

// Backoff of the consumer loops while Redis is unavailable.
const (
	loopMinBackoff = 100 * time.Millisecond
	loopMaxBackoff = 5 * time.Second
	// finalAckTimeout bounds the last XACK of a stopping Consume.
	finalAckTimeout = 3 * time.Second
	// ackBatch is the most ids one XACK carries.
	ackBatch = 1000
	// touchBatch is the most ids one touch script refreshes.
	touchBatch = 500
)

var errBadArgs = errors.New("redisstore: topic, group and consumer must not be empty and the handler not nil")

func (b *Backend) stream(topic string) string { return b.opt.KeyPrefix + "bus:" + topic }

// Publish appends ev to the topic's stream (XADD with MAXLEN ~ MaxLen) and
// returns once Redis acknowledged it. An empty ev.ID is replaced by a
// unique one before sending, so a retried XADD (by go-redis or by the
// caller passing the same ID) carries the same ID and receivers can
// de-duplicate it. When Redis is unreachable the error wraps
// store.ErrUnavailable and comes within the connection timeouts or the
// ctx deadline, whichever is first.
func (b *Backend) Publish(ctx context.Context, topic string, ev store.Event) error {
	if ev.ID == "" {
		ev.ID = b.newID()
	}
	args := &redis.XAddArgs{
		Stream: b.stream(topic),
		Values: []any{fID, ev.ID, fKey, ev.Key, fType, ev.Type, fData, ev.Data},
	}
	if b.opt.MaxLen > 0 {
		args.MaxLen, args.Approx = b.opt.MaxLen, true
	}
	if err := b.rdb.XAdd(ctx, args).Err(); err != nil {
		return wrap("publish to "+topic, err)
	}
	return nil
}

// Consume implements store.Bus on a Redis consumer group, created by the
// first Consume at the start of the stream (XGROUP CREATE … 0 MKSTREAM): a
// new group gets every event still in the stream, including those
// published before any consumer ran (and, for a group added to an old
// topic, up to MaxLen old events).
//
// It first re-reads this consumer's own pending entries (XREADGROUP 0),
// then new ones (XREADGROUP >, COUNT and BLOCK), never holding more than
// Window. An entry is acknowledged (batched XACK) once its handler returned
// nil; a failed handler is retried here after a backoff. Entries of other
// consumers idle for ClaimAfter are claimed (XAUTOCLAIM); the entries this
// consumer holds are refreshed so that nobody claims them while it runs.
//
// Consumer names must be unique among the running consumers of a group and
// stable across restarts (a host or instance name): a restart under the
// same name is what picks up the entries left pending.
//
// Redis outages do not end Consume: it logs a warning once, retries with
// backoff, and recreates the group if Redis came back without its data.
// Handlers receive a context that ends with ctx. Consume returns nil once
// ctx is done (or the Backend closed), the handlers in flight have
// returned and their acknowledgements were sent (if Redis is reachable;
// otherwise those entries are delivered again later).
func (b *Backend) Consume(ctx context.Context, topic, group, consumer string, h store.Handler) error {
	if topic == "" || group == "" || consumer == "" || h == nil {
		return errBadArgs
	}
	b.life.Lock()
	if b.closed.Load() {
		b.life.Unlock()
		return fmt.Errorf("redisstore: consume %q: closed: %w", topic, store.ErrUnavailable)
	}
	b.consumer.Add(1)
	b.life.Unlock()
	defer b.consumer.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	c := &groupConsumer{
		b:      b,
		stream: b.stream(topic),
		group:  group,
		name:   consumer,
		log:    b.log.With("topic", topic, "group", group, "consumer", consumer),
		acking: make(map[string]struct{}),
		kick:   make(chan struct{}, 1),
	}
	c.d = dispatch.New(h, c.ack, dispatch.Options{
		Workers:    b.opt.Workers,
		MinBackoff: b.opt.MinBackoff,
		MaxBackoff: b.opt.MaxBackoff,
		TrackRefs:  true,
		Logger:     c.log,
	})

	var wg sync.WaitGroup
	ackStop := make(chan struct{})
	wg.Go(func() { c.d.Run(ctx) })
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		c.acker(ackStop)
	}()
	wg.Go(func() { c.maintain(ctx) })

	c.read(ctx)

	wg.Wait() // handlers drained, maintenance stopped
	close(ackStop)
	<-ackDone
	return nil
}

type groupConsumer struct {
	b      *Backend
	stream string
	group  string
	name   string
	log    *slog.Logger
	d      *dispatch.Dispatcher[string]

	ackMu  sync.Mutex
	acks   []string            // handled, XACK not sent yet, oldest first
	acking map[string]struct{} // the same, as a set
	kick   chan struct{}

	blockedID atomic.Int64 // CLIENT ID of the connection of the blocking read
}

// read is the loop of XREADGROUP calls; it returns when ctx is done.
func (c *groupConsumer) read(ctx context.Context) {
	b := c.b
	conn := b.rdb.Conn() // the blocking read gets its own connection
	defer func() { _ = conn.Close() }()

	readerDone := make(chan struct{})
	unblocked := make(chan struct{})
	defer func() { close(readerDone); <-unblocked }()
	go func() {
		defer close(unblocked)
		c.unblockOnCancel(ctx, readerDone)
	}()

	bo := backoff{min: loopMinBackoff, max: loopMaxBackoff}
	needGroup := true
	pendingFrom := "0" // reading our own pending entries from here; "" when done
	for ctx.Err() == nil {
		if needGroup {
			if err := c.createGroup(ctx); err != nil {
				if ctx.Err() == nil {
					b.health.fail("create group", err)
					bo.sleep(ctx)
				}
				continue
			}
			needGroup = false
		}
		if c.d.WaitRoom(ctx, max(b.opt.Window-b.opt.Count, 0)) != nil {
			return
		}
		count := max(1, min(b.opt.Count, b.opt.Window-c.d.Held()))
		args := &redis.XReadGroupArgs{
			Group:    c.group,
			Consumer: c.name,
			Count:    int64(count),
		}
		if pendingFrom != "" {
			args.Streams = []string{c.stream, pendingFrom}
		} else {
			args.Streams = []string{c.stream, ">"}
			args.Block = b.opt.Block
			if c.blockedID.Load() == 0 {
				id, err := conn.ClientID(ctx).Result()
				if err != nil {
					conn = c.resetConn(ctx, conn, err, &bo)
					continue
				}
				c.blockedID.Store(id)
			}
		}
		if ctx.Err() != nil {
			return
		}
		streams, err := conn.XReadGroup(ctx, args).Result()
		switch {
		case err == nil:
		case errors.Is(err, redis.Nil): // BLOCK timed out, or unblocked
			b.health.ok()
			bo.reset()
			continue
		case isNoGroup(err):
			c.log.Info("consumer group missing (Redis restarted without its data?); recreating it")
			needGroup, pendingFrom = true, "0"
			continue
		default:
			conn = c.resetConn(ctx, conn, err, &bo)
			pendingFrom = "0" // a lost reply may have left entries in our pending list
			continue
		}
		b.health.ok()
		bo.reset()
		var msgs []redis.XMessage
		if len(streams) > 0 {
			msgs = streams[0].Messages
		}
		if pendingFrom != "" {
			if len(msgs) == 0 {
				pendingFrom = ""
				continue
			}
			pendingFrom = msgs[len(msgs)-1].ID
		}
		c.submit(msgs)
	}
}

// resetConn handles a failed read: a fresh connection, a warning once per
// outage, and a pause.
func (c *groupConsumer) resetConn(ctx context.Context, conn *redis.Conn, err error, bo *backoff) *redis.Conn {
	c.blockedID.Store(0)
	_ = conn.Close()
	if ctx.Err() != nil {
		return c.b.rdb.Conn()
	}
	c.b.health.fail("read "+c.stream, err)
	bo.sleep(ctx)
	return c.b.rdb.Conn()
}

// unblockOnCancel interrupts the blocking XREADGROUP once ctx is done, so
// that Consume does not wait for Block to pass.
func (c *groupConsumer) unblockOnCancel(ctx context.Context, readerDone <-chan struct{}) {
	select {
	case <-readerDone:
		return
	case <-ctx.Done():
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if id := c.blockedID.Load(); id != 0 {
			uctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.b.rdb.ClientUnblock(uctx, id).Err()
			cancel()
		}
		select {
		case <-readerDone:
			return
		case <-t.C:
		}
	}
}

func (c *groupConsumer) createGroup(ctx context.Context) error {
	err := c.b.rdb.XGroupCreateMkStream(ctx, c.stream, c.group, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return err
	}
	return nil
}

// submit hands entries to the dispatcher, except those handled and not
// yet acknowledged (met again when re-reading the pending list after an
// error). Entries trimmed from the stream while pending (no fields left)
// are acknowledged and reported.
func (c *groupConsumer) submit(msgs []redis.XMessage) {
	if len(msgs) == 0 {
		return
	}
	items := make([]dispatch.Item[string], 0, len(msgs))
	c.ackMu.Lock()
	for _, m := range msgs {
		if _, done := c.acking[m.ID]; done {
			continue
		}
		ev, ok := decode(m)
		if !ok {
			c.log.Warn("pending entry was trimmed from the stream before it was handled; event lost (raise MaxLen?)",
				"entry", m.ID)
			c.ackLocked(m.ID)
			continue
		}
		items = append(items, dispatch.Item[string]{Ref: m.ID, Event: ev})
	}
	c.ackMu.Unlock()
	c.d.Submit(items...)
}

func decode(m redis.XMessage) (store.Event, bool) {
	if m.Values == nil {
		return store.Event{}, false
	}
	str := func(k string) string {
		s, _ := m.Values[k].(string)
		return s
	}
	ev := store.Event{ID: str(fID), Key: str(fKey), Type: str(fType)}
	if d, ok := m.Values[fData].(string); ok {
		ev.Data = []byte(d)
	}
	if ev.ID == "" {
		ev.ID = m.ID // an entry not written by Publish
	}
	return ev, true
}

// ack queues an entry id for the acker (called by dispatcher workers).
func (c *groupConsumer) ack(id string) {
	c.ackMu.Lock()
	c.ackLocked(id)
	c.ackMu.Unlock()
}

func (c *groupConsumer) ackLocked(id string) {
	if _, dup := c.acking[id]; dup {
		return
	}
	c.acks = append(c.acks, id)
	c.acking[id] = struct{}{}
	if len(c.acks) == 1 {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// acker sends the queued acknowledgements in batches until stop is closed,
// then makes a last attempt with a bounded wait.
func (c *groupConsumer) acker(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	bo := backoff{min: loopMinBackoff, max: loopMaxBackoff}
	for {
		select {
		case <-c.kick:
		case <-stop:
		}
		for c.flushAcks(ctx) != nil && ctx.Err() == nil {
			bo.sleep(ctx)
		}
		bo.reset()
		if ctx.Err() != nil {
			fctx, fcancel := context.WithTimeout(context.Background(), finalAckTimeout)
			err := c.flushAcks(fctx)
			fcancel()
			if err != nil {
				c.log.Warn("could not acknowledge handled events; they will be delivered again", "err", err)
			}
			return
		}
	}
}

// flushAcks sends all queued acknowledgements; on failure the unsent ones
// stay queued.
func (c *groupConsumer) flushAcks(ctx context.Context) error {
	for {
		c.ackMu.Lock()
		n := min(len(c.acks), ackBatch)
		ids := append([]string(nil), c.acks[:n]...)
		c.ackMu.Unlock()
		if n == 0 {
			return nil
		}
		err := c.b.rdb.XAck(ctx, c.stream, c.group, ids...).Err()
		if err != nil && !isNoGroup(err) { // no group: nothing left to acknowledge
			if ctx.Err() == nil {
				c.b.health.fail("acknowledge", err)
			}
			return err
		}
		c.ackMu.Lock()
		for _, id := range c.acks[:n] {
			delete(c.acking, id)
		}
		c.acks = append(c.acks[:0], c.acks[n:]...)
		c.ackMu.Unlock()
	}
}

// touchScript resets the idle time of the listed pending entries that this
// consumer still owns (XCLAIM to itself, JUSTID so delivery counts stay),
// leaving alone those another consumer claimed meanwhile.
var touchScript = redis.NewScript(`
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
`)

// maintain refreshes the entries this consumer holds and claims entries
// of consumers gone for ClaimAfter, every ClaimAfter/4, until ctx is done.
func (c *groupConsumer) maintain(ctx context.Context) {
	every := max(c.b.opt.ClaimAfter/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.touch(ctx); err != nil && ctx.Err() == nil && !isNoGroup(err) {
			c.b.health.fail("refresh pending entries", err)
			continue
		}
		if err := c.claim(ctx); err != nil && ctx.Err() == nil && !isNoGroup(err) {
			c.b.health.fail("claim idle entries", err)
		}
	}
}

func (c *groupConsumer) touch(ctx context.Context) error {
	refs := c.d.Refs()
	for len(refs) > 0 {
		n := min(len(refs), touchBatch)
		args := make([]any, 0, n+2)
		args = append(args, c.group, c.name)
		for _, id := range refs[:n] {
			args = append(args, id)
		}
		refs = refs[n:]
		if err := touchScript.Run(ctx, c.b.rdb, []string{c.stream}, args...).Err(); err != nil {
			return err
		}
	}
	return nil
}

// claim takes over entries idle for ClaimAfter (XAUTOCLAIM), a few pages
// per round, while there is room.
func (c *groupConsumer) claim(ctx context.Context) error {
	start := "0-0"
	for range 10 {
		if c.d.Held() >= c.b.opt.Window {
			return nil
		}
		msgs, next, err := c.b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   c.stream,
			Group:    c.group,
			Consumer: c.name,
			MinIdle:  c.b.opt.ClaimAfter,
			Start:    start,
			Count:    int64(c.b.opt.Count),
		}).Result()
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			c.log.Info("claimed entries of a consumer gone too long", "count", len(msgs))
			c.submit(msgs)
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

// backoff is a doubling pause for the retry loops.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) sleep(ctx context.Context) {
	if b.cur == 0 {
		b.cur = b.min
	}
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.cur = min(b.cur*2, b.max)
}

func (b *backoff) reset() { b.cur = 0 }
