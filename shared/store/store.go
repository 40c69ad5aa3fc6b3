// Package store declares the state and event plumbing that Parley's roles
// share: a Store of records with expiry, and a Bus of durable events between
// roles. Implementations live in memstore (one process, the embedded
// default) and redisstore (split roles sharing Redis); storetest holds the
// conformance suite every implementation must pass.
//
// It must not know about XMPP, SIP or what the records mean.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Store.Get for a missing or expired key.
var ErrNotFound = errors.New("store: not found")

// ErrUnavailable wraps failures of the backing service (Redis down). Callers
// turn it into "try later" (SIP 503, XMPP remote-server-timeout/wait).
var ErrUnavailable = errors.New("store: backend unavailable")

// Store keeps small records shared by Parley's roles.
type Store interface {
	// Put writes value under key. A ttl of 0 means no expiry.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// PutIfAbsent writes only when key does not exist and reports whether it wrote.
	PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Get reads key; ErrNotFound when absent or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Event is one message on the Bus.
type Event struct {
	// ID identifies the event; it is unique per accepted event and stable
	// across redeliveries, so receivers de-duplicate by it.
	ID string `json:"id"`
	// Key orders events: events with the same Key are handled one after the
	// other in publish order; events with different Keys may be handled in
	// parallel. Parley uses the conversation id.
	Key string `json:"key,omitempty"`
	// Type says what Data holds ("message", "message-error", ...).
	Type string `json:"type"`
	// Data is the JSON encoding of a shared/model value.
	Data []byte `json:"data"`
}

// Handler processes one delivered event. Returning nil acknowledges it;
// returning an error leaves it pending so it is delivered again later (to
// this consumer, to a restarted consumer of the same name, or to another
// member of the group once it has been pending too long).
type Handler func(ctx context.Context, ev Event) error

// Bus carries events between roles with at-least-once delivery.
type Bus interface {
	// Publish returns only once the event is durably accepted (memory:
	// queued; Redis: XADD acknowledged). Only then may a caller tell its peer
	// that the event was accepted.
	Publish(ctx context.Context, topic string, ev Event) error
	// Consume delivers the events of topic to h as consumer of group, until
	// ctx ends. Each event goes to one member of the group. On start, it
	// first redelivers what this consumer had left unacknowledged. Consume
	// returns when ctx is done, after the handler in flight has returned.
	Consume(ctx context.Context, topic, group, consumer string, h Handler) error
}

// Backend is a Store and a Bus from one implementation.
type Backend interface {
	Store
	Bus
	// Ping checks that the backend is reachable (for /healthz).
	Ping(ctx context.Context) error
	Close() error
}
