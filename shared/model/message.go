package model

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/parleygw/parley/shared/address"
)

// MessageType is the XMPP message type kept across the SIP leg.
type MessageType string

const (
	Chat   MessageType = "chat"
	Normal MessageType = "normal"
)

// Message is a one-to-one chat message on its way from one side to the other.
type Message struct {
	// ID is the originating protocol's message id (XMPP stanza id, or an id
	// the SIP side minted). Errors and receipts echo it.
	ID string `json:"id"`
	// ConvID links the log lines of both legs of one conversation.
	ConvID  string          `json:"conv"`
	From    address.Address `json:"from"`
	To      address.Address `json:"to"`
	Type    MessageType     `json:"type,omitempty"`
	Body    string          `json:"body"`
	Subject string          `json:"subject,omitempty"`
	Lang    string          `json:"lang,omitempty"`
	Thread  string          `json:"thread,omitempty"`
	// ReplyTo, when set, is the bus topic on which the receiving side
	// publishes a Result once it has handed the message on (or failed to).
	ReplyTo string `json:"reply_to,omitempty"`
}

// MessageError reports that a Message could not be delivered. It travels
// back to the side the message came from, which tells the sender.
type MessageError struct {
	// ID is the failed message's ID, echoed to the sender.
	ID     string `json:"id"`
	ConvID string `json:"conv"`
	// From is the failed message's recipient, To its sender.
	From address.Address `json:"from"`
	To   address.Address `json:"to"`
	Err  Error           `json:"error"`
}

// ConversationID derives a short stable id for the conversation between two
// users, the same whichever of them writes first, so that both legs and both
// directions log under one id.
func ConversationID(a, b address.Address) string {
	x, y := strings.ToLower(a.Bare().String()), strings.ToLower(b.Bare().String())
	if x > y {
		x, y = y, x
	}
	sum := sha256.Sum256([]byte(x + "\x00" + y))
	return hex.EncodeToString(sum[:6])
}
