package xmppclient

import (
	"context"
	"testing"
)

func TestLaunchValidatesAddr(t *testing.T) {
	for _, addr := range []string{"", "xmpp.test:5222", "127.0.0.1"} {
		if _, err := Launch(context.Background(), Options{JID: "a@xmpp.test", Password: "a", Addr: addr}); err == nil {
			t.Errorf("Addr %q accepted", addr)
		}
	}
}

func TestLaunchFailsWithoutServer(t *testing.T) {
	// Nothing listens on port 1: the client reports failure instead of
	// retrying forever.
	_, err := Launch(context.Background(), Options{JID: "a@xmpp.test/x", Password: "a", Addr: "127.0.0.1:1"})
	if err == nil {
		t.Fatal("Launch succeeded without a server")
	}
	t.Log(err)
}
