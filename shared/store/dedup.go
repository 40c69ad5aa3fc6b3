package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// markerWriteTimeout bounds the write of the "done" marker, which is made
// even when the handler's context has just ended.
const markerWriteTimeout = 5 * time.Second

// Deduplicate wraps h so that an event whose ID was already handled
// successfully within ttl is acknowledged without calling h again. It
// records success under the key "done:"+scope+":"+ev.ID in st, with ttl.
// Use one scope per consumer group (two groups must each handle an event).
//
// What it does and does not promise:
//
//   - A redelivery after h succeeded and the marker was written is skipped.
//     That covers the usual cases: the acknowledgement was lost (crash or
//     outage after the marker, Redis restart), or the publisher retried with
//     the same ID.
//   - If the process dies, or the marker write fails, between h returning
//     nil and the marker being written, the event is handled again on
//     redelivery: delivery stays at-least-once, and h must tolerate that
//     (rare) repeat. A failed marker write is not reported: h succeeded, so
//     the event is acknowledged.
//   - Two deliveries of one ID running at the same time (a consumer
//     presumed dead while still handling it) both run h.
//   - A marker lasts ttl; a redelivery later than that runs h again. Choose
//     ttl longer than an event can stay pending (0 keeps markers forever).
//   - If st cannot be read, the event is not handled: the error is returned
//     so the event stays pending and is tried again later.
//
// An event with an empty ID is passed to h as is.
func Deduplicate(st Store, scope string, ttl time.Duration, h Handler) Handler {
	return func(ctx context.Context, ev Event) error {
		if ev.ID == "" {
			return h(ctx, ev)
		}
		key := "done:" + scope + ":" + ev.ID
		switch _, err := st.Get(ctx, key); {
		case err == nil:
			return nil // handled before
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("store: dedup check of %s: %w", ev.ID, err)
		}
		if err := h(ctx, ev); err != nil {
			return err
		}
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markerWriteTimeout)
		defer cancel()
		_ = st.Put(mctx, key, []byte{'1'}, ttl)
		return nil
	}
}
