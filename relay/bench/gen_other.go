//go:build !linux

package bench

import (
	"context"

	"github.com/parleygw/parley/relay"
)

type generator struct{}

func newGenerator(Config) (*generator, error) { return nil, ErrUnsupported }
func (*generator) close()                     {}
func (*generator) step(context.Context, int, *relay.Relay) (Step, error) {
	return Step{}, ErrUnsupported
}
