package memstore

import (
	"context"
	"testing"
	"time"
)

func TestSweepRemovesExpired(t *testing.T) {
	b := New(Options{SweepInterval: 10 * time.Millisecond})
	defer b.Close()
	ctx := context.Background()
	if err := b.Put(ctx, "short", []byte("x"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "kept", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.kvMu.RLock()
		_, short := b.kv["short"]
		_, kept := b.kv["kept"]
		b.kvMu.RUnlock()
		if !kept {
			t.Fatal("sweep removed a record without expiry")
		}
		if !short {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("expired record never swept")
		}
		time.Sleep(5 * time.Millisecond) // the sweeper is clock-driven
	}
}
