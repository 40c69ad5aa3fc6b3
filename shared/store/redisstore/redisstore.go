// Package redisstore is the Store and Bus on Redis, for Parley roles split
// across processes or hosts. Records are plain string keys with PX expiry;
// the Bus is one Redis Stream per topic with consumer groups, so an event
// stays pending until a handler acknowledged it and survives a consumer
// restart (and a Redis restart when Redis persists with AOF).
//
// Keys: records live under KeyPrefix+"kv:"+key, streams under
// KeyPrefix+"bus:"+topic.
//
// It must not know what the records or events mean.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleygw/parley/shared/store"
)

// Defaults for the zero values of Options, and for the connection settings
// a URL does not set.
const (
	DefaultKeyPrefix  = "parley:"
	DefaultMaxLen     = 1_000_000
	DefaultWindow     = 1024
	DefaultCount      = 100
	DefaultBlock      = 2 * time.Second
	DefaultClaimAfter = 30 * time.Second

	DefaultDialTimeout = 2 * time.Second
	DefaultReadTimeout = 3 * time.Second
	DefaultMaxRetries  = 1
)

// Options tunes a Backend. The zero value gives the documented defaults.
//
// Connection settings (timeouts, pool, TLS, user and password) come from
// the redis:// or rediss:// URL and its query parameters, as go-redis
// parses them (redis://:pw@host:6379/0?dial_timeout=1s&read_timeout=2s).
// When the URL leaves them unset, dial_timeout is 2s, read_timeout and
// write_timeout 3s, max_retries 1 and dialer_retries 1, so that a call
// fails at once when Redis refuses connections and within about 6s when it
// hangs or its host is unreachable. A context deadline bounds any call.
type Options struct {
	// KeyPrefix is put before every key and stream name (default
	// "parley:"), so several Parley sites can share one Redis.
	KeyPrefix string
	// MaxLen caps each stream at about this many entries (XADD MAXLEN ~,
	// default 1,000,000; negative disables trimming). Trimming drops the
	// oldest entries whether or not every group has handled them: a group
	// whose consumers are down while MaxLen newer events are published
	// loses events. Size it for the longest outage of a consumer role you
	// want to survive; disabling it lets Redis memory grow without bound
	// instead.
	MaxLen int64
	// Workers is the number of handlers each Consume runs at once
	// (default 32). Events with the same Key never run at the same time.
	Workers int
	// Window is how many entries one consumer holds at a time: read from
	// Redis and not yet acknowledged (default 1024). Entries queued behind
	// a failing Key count against it; a window full of them pauses reading.
	Window int
	// Count is how many entries one XREADGROUP or XAUTOCLAIM asks for
	// (default 100).
	Count int
	// Block is how long one XREADGROUP waits for new entries (default 2s).
	// Consume stops at once regardless (it unblocks its own read).
	Block time.Duration
	// ClaimAfter is how long an entry may sit unacknowledged in the pending
	// list of a consumer that stopped refreshing it before another
	// consumer of the group claims it (default 30s). A running consumer
	// refreshes the entries it holds every ClaimAfter/4, however long its
	// handlers or retries take.
	ClaimAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed handler is
	// retried (defaults 50ms, doubling up to 5s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Logger receives outages, recoveries and handler failures; nil
	// discards logs. The password of the URL is never logged.
	Logger *slog.Logger
}

// Backend is the Redis store.Backend. Create it with New.
type Backend struct {
	rdb    *redis.Client
	opt    Options
	log    *slog.Logger
	health health

	idPrefix string
	idSeq    atomic.Uint64

	life     sync.Mutex // guards closed and consumers.Add against Close
	closed   atomic.Bool
	ctx      context.Context // ends on Close
	cancel   context.CancelFunc
	consumer sync.WaitGroup
}

var _ store.Backend = (*Backend)(nil)

// New connects to the Redis at rawURL and checks it answers (PING) within
// ctx. An unreachable Redis fails with an error wrapping
// store.ErrUnavailable; the caller may retry.
func New(ctx context.Context, rawURL string, opt Options) (*Backend, error) {
	ropt, err := redis.ParseURL(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("redisstore: invalid redis URL %s: %w", Redact(rawURL), err)
	}
	if ropt.DialTimeout == 0 {
		ropt.DialTimeout = DefaultDialTimeout
	}
	if ropt.ReadTimeout == 0 {
		ropt.ReadTimeout = DefaultReadTimeout
	}
	if ropt.WriteTimeout == 0 {
		ropt.WriteTimeout = ropt.ReadTimeout
	}
	if ropt.MaxRetries == 0 {
		ropt.MaxRetries = DefaultMaxRetries
	}
	if ropt.DialerRetries == 0 {
		ropt.DialerRetries = 1
	}
	if ropt.ClientName == "" {
		ropt.ClientName = "parley"
	}
	ropt.ContextTimeoutEnabled = true

	if opt.KeyPrefix == "" {
		opt.KeyPrefix = DefaultKeyPrefix
	}
	if opt.MaxLen == 0 {
		opt.MaxLen = DefaultMaxLen
	}
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	if opt.Count <= 0 {
		opt.Count = DefaultCount
	}
	if opt.Block <= 0 {
		opt.Block = DefaultBlock
	}
	if opt.ClaimAfter <= 0 {
		opt.ClaimAfter = DefaultClaimAfter
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("redis", Redact(rawURL))

	rdb := redis.NewClient(ropt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, wrap(fmt.Sprintf("connect to %s", Redact(rawURL)), err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)
	b := &Backend{
		rdb:      rdb,
		opt:      opt,
		log:      log,
		health:   health{log: log},
		idPrefix: hex.EncodeToString(id[:]) + "-",
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Redact returns rawURL with its password replaced, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Ping implements store.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	return wrap("ping", b.rdb.Ping(ctx).Err())
}

// Close stops every Consume (after their handlers in flight returned and
// their acknowledgements were sent) and closes the connections. It is
// idempotent.
func (b *Backend) Close() error {
	b.life.Lock()
	if b.closed.Swap(true) {
		b.life.Unlock()
		return nil
	}
	b.life.Unlock()
	b.cancel()
	b.consumer.Wait()
	if err := b.rdb.Close(); err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

func (b *Backend) kvKey(key string) string { return b.opt.KeyPrefix + "kv:" + key }

var errNegativeTTL = errors.New("redisstore: negative ttl")

// Put implements store.Store (SET, with PX when ttl > 0).
func (b *Backend) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return errNegativeTTL
	}
	return wrap("put "+key, b.rdb.Set(ctx, b.kvKey(key), value, pxTTL(ttl)).Err())
}

// PutIfAbsent implements store.Store (SET NX, with PX when ttl > 0).
func (b *Backend) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl < 0 {
		return false, errNegativeTTL
	}
	ok, err := b.rdb.SetNX(ctx, b.kvKey(key), value, pxTTL(ttl)).Result()
	if err != nil {
		return false, wrap("put-if-absent "+key, err)
	}
	return ok, nil
}

// Get implements store.Store.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := b.rdb.Get(ctx, b.kvKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get "+key, err)
	}
	return v, nil
}

// Delete implements store.Store.
func (b *Backend) Delete(ctx context.Context, key string) error {
	return wrap("delete "+key, b.rdb.Del(ctx, b.kvKey(key)).Err())
}

// pxTTL rounds a positive ttl up to Redis' millisecond resolution.
func pxTTL(ttl time.Duration) time.Duration {
	if ttl > 0 && ttl < time.Millisecond {
		return time.Millisecond
	}
	return ttl
}

// wrap adds context to a Redis error and marks it store.ErrUnavailable
// when Redis could not serve the request (connection refused or lost,
// timeout, server loading or read-only...).
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up; not Redis' doing
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, redis.ErrClosed) {
		// A reply from the server: only some mean "try later".
		return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
			redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
			redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
			redis.IsNoReplicasError(err) || redis.IsAuthError(err) ||
			redis.HasErrorPrefix(err, "BUSY ") || redis.IsOOMError(err)
	}
	return true // network, timeout, pool or closed client
}

// newID returns an event id unique to this Backend's lifetime and, with
// 64 random bits of prefix, across processes.
func (b *Backend) newID() string {
	var buf [40]byte
	s := append(buf[:0], b.idPrefix...)
	return string(strconv.AppendUint(s, b.idSeq.Add(1), 36))
}

// health logs outages of the background loops once each: a warning when
// Redis stops answering, a notice when it answers again.
type health struct {
	log    *slog.Logger
	mu     sync.Mutex
	down   bool
	warned bool
	since  time.Time
	upAt   time.Time
}

// quietAfterRecovery is how soon after a recovery a new failure counts as
// the same outage (a reconnect on a stale pooled connection).
const quietAfterRecovery = 5 * time.Second

func (h *health) fail(during string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		h.down, h.since = true, time.Now()
	}
	if !h.warned && (h.upAt.IsZero() || time.Since(h.upAt) > quietAfterRecovery) {
		h.warned = true
		h.log.Warn("redis unavailable; retrying with backoff", "during", during, "err", err)
	}
}

func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return
	}
	h.down, h.upAt = false, time.Now()
	if h.warned {
		h.warned = false
		h.log.Info("redis available again", "down_for", time.Since(h.since).Round(time.Millisecond))
	}
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

func isBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }
