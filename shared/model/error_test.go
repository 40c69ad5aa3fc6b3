package model

import (
	"testing"

	"github.com/parleygw/parley/shared/address"
)

// Table E2 of ../shared/reference/standards.md (RFC 7247 §7.2).
func TestFromSIP(t *testing.T) {
	tests := []struct {
		status int
		cond   string
		typ    ErrorType
	}{
		{301, Gone, Cancel}, {302, Redirect, Cancel}, {399, Redirect, Cancel},
		{400, BadRequest, Modify}, {401, NotAuthorized, Auth}, {403, Forbidden, Cancel},
		{404, ItemNotFound, Cancel}, {405, FeatureNotImplemented, Cancel},
		{407, NotAuthorized, Auth}, {408, RemoteServerTimeout, Wait}, {413, PolicyViolation, Modify},
		{415, NotAcceptable, Modify}, {416, JIDMalformed, Modify}, {420, FeatureNotImplemented, Cancel},
		{423, ResourceConstraint, Wait}, {480, RecipientUnavailable, Wait}, {481, ItemNotFound, Cancel},
		{484, ItemNotFound, Modify}, {486, RecipientUnavailable, Wait}, {487, ServiceUnavailable, Cancel},
		{488, NotAcceptable, Modify}, {491, UnexpectedRequest, Cancel}, {499, BadRequest, Modify},
		{500, InternalServerError, Cancel}, {502, RemoteServerNotFound, Cancel},
		{503, ServiceUnavailable, Wait}, {504, RemoteServerTimeout, Wait}, {513, PolicyViolation, Modify},
		{599, InternalServerError, Cancel}, {600, ServiceUnavailable, Cancel}, {603, ServiceUnavailable, Cancel},
		{604, ItemNotFound, Cancel}, {606, NotAcceptable, Modify}, {699, ServiceUnavailable, Cancel},
	}
	for _, tt := range tests {
		got := FromSIP(tt.status, "why")
		if got.Condition != tt.cond || got.Type != tt.typ || got.SIPStatus != tt.status || got.Text != "why" {
			t.Errorf("FromSIP(%d) = %+v, want %s/%s", tt.status, got, tt.cond, tt.typ)
		}
	}
}

// Table E1 (RFC 7247 §7.1).
func TestFromXMPP(t *testing.T) {
	tests := []struct {
		cond   string
		status int
	}{
		{BadRequest, 400}, {Conflict, 400}, {FeatureNotImplemented, 501}, {Forbidden, 403},
		{Gone, 410}, {InternalServerError, 500}, {ItemNotFound, 404}, {JIDMalformed, 400},
		{NotAcceptable, 406}, {NotAuthorized, 401}, {PolicyViolation, 403},
		{RecipientUnavailable, 480}, {Redirect, 302}, {RemoteServerNotFound, 404},
		{RemoteServerTimeout, 408}, {ResourceConstraint, 500}, {ServiceUnavailable, 503},
		{SubscriptionRequired, 400}, {UndefinedCondition, 400}, {UnexpectedRequest, 400},
		{"no-such-condition", 400},
	}
	for _, tt := range tests {
		if got := FromXMPP(tt.cond, ""); got.SIPStatus != tt.status {
			t.Errorf("FromXMPP(%s) = %d, want %d", tt.cond, got.SIPStatus, tt.status)
		}
	}
	if got := FromXMPP("no-such-condition", ""); got.Condition != UndefinedCondition {
		t.Errorf("unknown condition kept as %q", got.Condition)
	}
}

func TestConversationIDIsSymmetric(t *testing.T) {
	a := address.Address{User: "alice", Domain: "xmpp.test", Resource: "phone"}
	b := address.Address{User: "Carol", Domain: "sip.test"}
	if ConversationID(a, b) != ConversationID(b, a.Bare()) {
		t.Fatal("conversation id depends on direction or resource")
	}
	if ConversationID(a, b) == ConversationID(a, address.Address{User: "dave", Domain: "sip.test"}) {
		t.Fatal("different conversations share an id")
	}
}
