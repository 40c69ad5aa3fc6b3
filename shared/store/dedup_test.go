package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleygw/parley/shared/store"
)

// mapStore is a minimal Store recording the ttl of each Put.
type mapStore struct {
	mu     sync.Mutex
	m      map[string][]byte
	ttl    map[string]time.Duration
	getErr error
	putErr error
}

func newMapStore() *mapStore {
	return &mapStore{m: map[string][]byte{}, ttl: map[string]time.Duration{}}
}

func (s *mapStore) Put(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putErr != nil {
		return s.putErr
	}
	s.m[k], s.ttl[k] = v, ttl
	return nil
}

func (s *mapStore) PutIfAbsent(ctx context.Context, k string, v []byte, ttl time.Duration) (bool, error) {
	panic("not used")
}

func (s *mapStore) Get(ctx context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErr != nil {
		return nil, s.getErr
	}
	v, ok := s.m[k]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (s *mapStore) Delete(ctx context.Context, k string) error { panic("not used") }

func TestDeduplicate(t *testing.T) {
	ctx := context.Background()
	st := newMapStore()
	calls := 0
	fail := errors.New("far side down")
	var next error
	h := store.Deduplicate(st, "sipside", time.Hour, func(context.Context, store.Event) error {
		calls++
		return next
	})
	ev := store.Event{ID: "e1", Type: "message"}

	next = fail
	if err := h(ctx, ev); !errors.Is(err, fail) {
		t.Fatalf("failing handler: got %v", err)
	}
	if _, ok := st.m["done:sipside:e1"]; ok {
		t.Fatal("marker written for a failed event")
	}
	next = nil
	if err := h(ctx, ev); err != nil || calls != 2 {
		t.Fatalf("retry: err %v, calls %d", err, calls)
	}
	if st.ttl["done:sipside:e1"] != time.Hour {
		t.Fatalf("marker %v with ttl %v", st.m, st.ttl)
	}
	if err := h(ctx, ev); err != nil || calls != 2 {
		t.Fatalf("redelivery: err %v, calls %d; want skipped", err, calls)
	}

	// Another scope handles the same ID on its own.
	other := store.Deduplicate(st, "component", time.Hour, func(context.Context, store.Event) error {
		calls++
		return nil
	})
	if err := other(ctx, ev); err != nil || calls != 3 {
		t.Fatalf("other scope: err %v, calls %d", err, calls)
	}

	// No ID, no de-duplication.
	for range 2 {
		if err := h(ctx, store.Event{Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 5 {
		t.Fatalf("events without ID: calls %d, want 5", calls)
	}
}

func TestDeduplicateStoreErrors(t *testing.T) {
	down := errors.New("redis down")
	st := newMapStore()
	st.getErr = down
	calls := 0
	h := store.Deduplicate(st, "s", time.Hour, func(context.Context, store.Event) error {
		calls++
		return nil
	})
	ev := store.Event{ID: "e1"}
	if err := h(context.Background(), ev); !errors.Is(err, down) || calls != 0 {
		t.Fatalf("unreadable store: err %v, calls %d; want the error and no call", err, calls)
	}

	// A failed marker write still acknowledges the handled event.
	st.getErr, st.putErr = nil, down
	if err := h(context.Background(), ev); err != nil || calls != 1 {
		t.Fatalf("unwritable marker: err %v, calls %d", err, calls)
	}
}

func TestDeduplicateMarksAfterCancel(t *testing.T) {
	st := newMapStore()
	ctx, cancel := context.WithCancel(context.Background())
	h := store.Deduplicate(st, "s", time.Hour, func(context.Context, store.Event) error {
		cancel() // shutdown while the handler finishes its work
		return nil
	})
	if err := h(ctx, store.Event{ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.m["done:s:e1"]; !ok {
		t.Fatal("no marker written once the context ended")
	}
}
