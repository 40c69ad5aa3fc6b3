// Package memstore is the in-process Store and Bus, Parley's embedded
// default when every role runs in one process. Nothing survives the
// process: "accepted" on Publish means queued in memory.
//
// Records expire lazily on read and are swept periodically. The Bus keeps a
// queue per topic and consumer group; see Backend.Consume for the delivery
// rules, which mirror those of redisstore so both pass storetest.
//
// It must not know what the records or events mean.
package memstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/internal/dispatch"
)

// Defaults for the zero values of Options.
const (
	DefaultWindow        = 1024
	DefaultClaimAfter    = 30 * time.Second
	DefaultSweepInterval = time.Minute
)

// Options tunes a Backend. The zero value gives the documented defaults.
type Options struct {
	// Workers is the number of handlers each Consume runs at once
	// (default 32). Events with the same Key never run at the same time.
	Workers int
	// Window is how many events one consumer holds at a time: queued for
	// its workers, running, or waiting for a retry (default 1024). Events
	// queued behind a failing Key count against it.
	Window int
	// MinBackoff and MaxBackoff bound the wait before a failed event is
	// retried (defaults 50ms, doubling up to 5s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// ClaimAfter is how long the unacknowledged events of a consumer that
	// stopped stay reserved for it (a restart under the same name gets them
	// first); after that, another consumer of the group takes them
	// (default 30s).
	ClaimAfter time.Duration
	// SweepInterval is how often expired records are removed (default 1m);
	// they are invisible to readers from the moment they expire.
	SweepInterval time.Duration
	// Logger receives handler failures; nil discards logs.
	Logger *slog.Logger
}

// errClosed is returned once the Backend is closed.
var errClosed = fmt.Errorf("memstore: closed: %w", store.ErrUnavailable)

// Backend is the in-memory store.Backend. Create it with New.
type Backend struct {
	opt Options
	log *slog.Logger

	kvMu sync.RWMutex
	kv   map[string]record

	busMu  sync.RWMutex
	topics map[string]*topic

	idPrefix string
	idSeq    atomic.Uint64

	life     sync.Mutex // guards closed and consumers.Add against Close
	closed   atomic.Bool
	ctx      context.Context // ends on Close
	cancel   context.CancelFunc
	consumer sync.WaitGroup
	sweeper  chan struct{} // closed when the sweeper has stopped
}

var _ store.Backend = (*Backend)(nil)

type record struct {
	value   []byte
	expires int64 // UnixNano; 0 means never
}

// New returns a running Backend; Close stops it.
func New(opt Options) *Backend {
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	if opt.ClaimAfter <= 0 {
		opt.ClaimAfter = DefaultClaimAfter
	}
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = DefaultSweepInterval
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)
	b := &Backend{
		opt:      opt,
		log:      log,
		kv:       make(map[string]record),
		topics:   make(map[string]*topic),
		idPrefix: hex.EncodeToString(id[:]) + "-",
		sweeper:  make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.sweep()
	return b
}

// Ping reports whether the Backend is open.
func (b *Backend) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Close ends every Consume (after their handlers in flight returned) and
// stops the sweeper. Later calls fail with an error wrapping
// store.ErrUnavailable. Close is idempotent.
func (b *Backend) Close() error {
	b.life.Lock()
	if b.closed.Swap(true) {
		b.life.Unlock()
		return nil
	}
	b.life.Unlock()
	b.cancel()
	b.consumer.Wait()
	<-b.sweeper
	return nil
}

// Put implements store.Store.
func (b *Backend) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.check(ctx, ttl); err != nil {
		return fmt.Errorf("memstore: put %q: %w", key, err)
	}
	rec := record{value: bytes.Clone(value), expires: expiry(ttl)}
	b.kvMu.Lock()
	b.kv[key] = rec
	b.kvMu.Unlock()
	return nil
}

// PutIfAbsent implements store.Store.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := b.check(ctx, ttl); err != nil {
		return false, fmt.Errorf("memstore: put-if-absent %q: %w", key, err)
	}
	now := time.Now().UnixNano()
	b.kvMu.Lock()
	defer b.kvMu.Unlock()
	if rec, ok := b.kv[key]; ok && !rec.expired(now) {
		return false, nil
	}
	b.kv[key] = record{value: bytes.Clone(value), expires: expiry(ttl)}
	return true, nil
}

// Get implements store.Store. The returned slice is the caller's.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.check(ctx, 0); err != nil {
		return nil, fmt.Errorf("memstore: get %q: %w", key, err)
	}
	b.kvMu.RLock()
	rec, ok := b.kv[key]
	b.kvMu.RUnlock()
	if !ok || rec.expired(time.Now().UnixNano()) {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(rec.value), nil
}

// Delete implements store.Store.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, 0); err != nil {
		return fmt.Errorf("memstore: delete %q: %w", key, err)
	}
	b.kvMu.Lock()
	delete(b.kv, key)
	b.kvMu.Unlock()
	return nil
}

var errNegativeTTL = errors.New("negative ttl")

func (b *Backend) check(ctx context.Context, ttl time.Duration) error {
	if b.closed.Load() {
		return errClosed
	}
	if ttl < 0 {
		return errNegativeTTL
	}
	return ctx.Err()
}

func expiry(ttl time.Duration) int64 {
	if ttl == 0 {
		return 0
	}
	return time.Now().Add(ttl).UnixNano()
}

func (r record) expired(now int64) bool { return r.expires != 0 && now >= r.expires }

func (b *Backend) sweep() {
	defer close(b.sweeper)
	t := time.NewTicker(b.opt.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		b.kvMu.Lock()
		for k, rec := range b.kv {
			if rec.expired(now) {
				delete(b.kv, k)
			}
		}
		b.kvMu.Unlock()
	}
}

// newID returns an event id unique to this Backend's lifetime and, with
// 64 random bits of prefix, across processes.
func (b *Backend) newID() string {
	var buf [40]byte
	s := append(buf[:0], b.idPrefix...)
	return string(strconv.AppendUint(s, b.idSeq.Add(1), 36))
}

func (b *Backend) dispatchOptions(log *slog.Logger) dispatch.Options {
	return dispatch.Options{
		Workers:    b.opt.Workers,
		MinBackoff: b.opt.MinBackoff,
		MaxBackoff: b.opt.MaxBackoff,
		Logger:     log,
	}
}
