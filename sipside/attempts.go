package sipside

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parleygw/parley/shared/model"
	"github.com/parleygw/parley/shared/store"
)

// The delivery record of an outbound event lives in the Store, so that a
// restarted instance, or another instance of the group, knows how often the
// MESSAGE was already tried and whether its failure was already decided.

// recordTTL is how long a delivery record outlives its last write.
const recordTTL = 24 * time.Hour

// deliveryRecord is what sipside remembers about one outbound event.
type deliveryRecord struct {
	// Attempts counts the sends started (a crash mid-send counts too).
	Attempts int `json:"attempts"`
	// Final is the failure already decided: a redelivery only reports it
	// again and never sends the MESSAGE a second time.
	Final *model.Error `json:"final,omitempty"`
}

type records struct{ st store.Store }

func recordKey(eventID string) string { return "sipside:out:" + eventID }

func (r records) load(ctx context.Context, eventID string) (deliveryRecord, error) {
	var rec deliveryRecord
	b, err := r.st.Get(ctx, recordKey(eventID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, nil
	case err != nil:
		return rec, fmt.Errorf("read delivery record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		// A record we cannot read must not block the message: start over.
		return deliveryRecord{}, nil
	}
	return rec, nil
}

func (r records) save(ctx context.Context, eventID string, rec deliveryRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode delivery record: %w", err)
	}
	if err := r.st.Put(ctx, recordKey(eventID), b, recordTTL); err != nil {
		return fmt.Errorf("write delivery record: %w", err)
	}
	return nil
}

func (r records) drop(ctx context.Context, eventID string) error {
	if err := r.st.Delete(ctx, recordKey(eventID)); err != nil {
		return fmt.Errorf("delete delivery record: %w", err)
	}
	return nil
}
