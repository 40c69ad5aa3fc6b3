package memstore_test

import (
	"testing"

	"github.com/parleygw/parley/shared/store"
	"github.com/parleygw/parley/shared/store/memstore"
	"github.com/parleygw/parley/shared/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		return memstore.New(memstore.Options{ClaimAfter: storetest.ClaimAfter})
	})
}

func BenchmarkBus(b *testing.B) {
	be := memstore.New(memstore.Options{})
	defer be.Close()
	storetest.BenchmarkBus(b, be, 4)
}
