package sipside

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// The XMPP side's verdicts on inbound MESSAGEs arrive as model.Result events
// on this instance's reply topic. An inbound transaction waits for the one
// carrying its event id; results nobody waits for any more (the MESSAGE was
// already answered 202, or this instance restarted) are dropped.

// replyGroup is the consumer group of the reply topic.
const replyGroup = "sip-replies"

// replyTopic is where this instance's Results come back.
func replyTopic(instance string) string { return "to-sip.reply." + instance }

// waiters maps bus event ids to the transactions waiting for their Result.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan model.Result
}

func newWaiters() *waiters { return &waiters{m: map[string][]chan model.Result{}} }

// add registers interest in eventID. Call it before publishing, so a fast
// Result cannot be missed; call the returned cancel when done waiting.
func (w *waiters) add(eventID string) (<-chan model.Result, func()) {
	ch := make(chan model.Result, 1)
	w.mu.Lock()
	w.m[eventID] = append(w.m[eventID], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[eventID]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, eventID)
		} else {
			w.m[eventID] = list
		}
	}
}

// resolve hands r to everyone waiting for eventID and reports how many.
func (w *waiters) resolve(eventID string, r model.Result) int {
	w.mu.Lock()
	list := w.m[eventID]
	delete(w.m, eventID)
	w.mu.Unlock()
	for _, c := range list {
		c <- r // buffered, one Result per channel
	}
	return len(list)
}

// onResult is the reply topic's handler. It never asks for a redelivery: a
// Result is only useful to a transaction waiting right now.
func (s *Server) onResult(_ context.Context, ev store.Event) error {
	var r model.Result
	if err := json.Unmarshal(ev.Data, &r); err != nil || ev.Type != model.EventResult {
		s.metrics.undeliverables.Inc()
		s.log.Warn("unusable event on the reply topic dropped", "event", ev.ID, "type", ev.Type, "err", err)
		return nil
	}
	id := r.EventID
	if id == "" && r.ID != "" {
		id = inboundEventPrefix + r.ID
	}
	if n := s.waiters.resolve(id, r); n == 0 {
		s.log.Debug("result for no waiting MESSAGE dropped", "event", id, "conv", ev.Key)
	}
	return nil
}
