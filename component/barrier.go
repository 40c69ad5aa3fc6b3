package component

import (
	"context"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parleygw/parley/shared/model"
)

// barrier finds out what the server did with the messages we write.
//
// An XMPP server does not acknowledge a message; it only bounces one it
// cannot deliver (<message type="error"> with the same id). Prosody
// handles one stream's stanzas in order and bounces a message to an
// unknown or offline local user at once, so after writing messages we send
// an IQ ping to the recipients' domain on the same stream: once its answer
// is back, every bounce for those messages has arrived too. No bounce by
// then means the server took the message.
//
// One ping covers every message written before it to that domain: while a
// ping is out, new messages queue for the next one, so at high rates there
// is one ping per burst, not per message.
type barrier struct {
	l      *link
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  error
	pending map[string][]*delivery // by bounceKey
	batches map[string]*batch      // by recipient domain
}

// delivery is one message waiting for its verdict.
type delivery struct {
	key     string
	domain  jid.JID
	written time.Time

	done     chan struct{}
	resolved bool
	bounce   *model.Error // the server bounced it
	err      error        // no verdict (stream lost, ping timed out)
}

type batch struct {
	waiting []*delivery
	running bool
}

func newBarrier(l *link) *barrier {
	ctx, cancel := context.WithCancel(context.Background())
	return &barrier{l: l, ctx: ctx, cancel: cancel, pending: map[string][]*delivery{}, batches: map[string]*batch{}}
}

// bounceKey identifies a message we wrote by what its bounce carries: the
// id and our sender JID (the bounce's 'to'), bare. The bounce's 'from' is
// left out: a server may bounce from its own domain rather than from the
// recipient.
func bounceKey(id, ours string) string {
	if j, err := jid.Parse(ours); err == nil {
		ours = j.Bare().String()
	}
	return id + "\x00" + ours
}

// expect registers a message before it is written, so that a bounce is
// caught however early it comes.
func (b *barrier) expect(key string, domain jid.JID) (*delivery, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed != nil {
		return nil, b.closed
	}
	d := &delivery{key: key, domain: domain, done: make(chan struct{})}
	b.pending[key] = append(b.pending[key], d)
	return d, nil
}

// written queues d for the next barrier ping to its domain.
func (b *barrier) written(d *delivery) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d.written = time.Now()
	if d.resolved {
		return
	}
	dom := d.domain.String()
	bt := b.batches[dom]
	if bt == nil {
		bt = &batch{}
		b.batches[dom] = bt
	}
	bt.waiting = append(bt.waiting, d)
	if !bt.running {
		bt.running = true
		go b.run(d.domain, bt)
	}
}

// wait returns the verdict on d: the bounce (nil when the server took the
// message), or an error when there is no verdict.
func (b *barrier) wait(ctx context.Context, d *delivery) (*model.Error, error) {
	select {
	case <-d.done:
		return d.bounce, d.err
	case <-ctx.Done():
		b.resolve(d, nil, fmt.Errorf("waiting for the delivery barrier: %w", ctx.Err()))
		<-d.done
		return d.bounce, d.err
	}
}

// forget drops d (it could not be written).
func (b *barrier) forget(d *delivery) { b.resolve(d, nil, errStreamDown) }

// bounce records a bounce for key. It reports whether a message waiting for
// its verdict was found.
func (b *barrier) bounce(key string, e model.Error) bool {
	b.mu.Lock()
	ds := b.pending[key]
	b.mu.Unlock()
	found := false
	for _, d := range ds {
		if b.resolve(d, &e, nil) {
			found = true
		}
	}
	return found
}

// resolve gives d its verdict once; it reports whether this call did.
func (b *barrier) resolve(d *delivery, bounce *model.Error, err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.resolved {
		return false
	}
	d.resolved = true
	d.bounce, d.err = bounce, err
	list := b.pending[d.key]
	for i, x := range list {
		if x == d {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(b.pending, d.key)
	} else {
		b.pending[d.key] = list
	}
	close(d.done)
	if err == nil && !d.written.IsZero() {
		b.l.s.c.metrics.barrier.Observe(time.Since(d.written).Seconds())
	}
	return true
}

// run sends barrier pings to domain until no message waits for one.
func (b *barrier) run(domain jid.JID, bt *batch) {
	for {
		b.mu.Lock()
		waiting := bt.waiting
		bt.waiting = nil
		if len(waiting) == 0 {
			bt.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()

		ctx, cancel := context.WithTimeout(b.ctx, b.l.s.c.deliveryTimeout)
		err := b.l.ping(ctx, domain)
		cancel()
		if err != nil {
			err = fmt.Errorf("delivery barrier: %w", err)
		}
		for _, d := range waiting {
			b.resolve(d, nil, err)
		}
	}
}

// fail ends the barrier with its session: every message still waiting gets
// err, and new ones are refused.
func (b *barrier) fail(err error) {
	b.mu.Lock()
	b.closed = err
	var all []*delivery
	for _, ds := range b.pending {
		all = append(all, ds...)
	}
	b.mu.Unlock()
	b.cancel()
	for _, d := range all {
		b.resolve(d, nil, err)
	}
}
