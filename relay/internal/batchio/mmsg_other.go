//go:build !linux

package batchio

import (
	"net"
	"net/netip"
)

func newMMsg(*net.UDPConn, netip.AddrPort, int) (Conn, error) { return nil, ErrUnsupported }
