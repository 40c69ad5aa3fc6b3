package model

// Result tells the side that handed over a Message what became of it. It is
// published to the Message's ReplyTo topic when that is set, so the SIP side
// can answer a MESSAGE with what the XMPP server actually did.
type Result struct {
	// ID is the Message's ID; EventID the bus event that carried it.
	ID      string `json:"id"`
	EventID string `json:"event"`
	// Err is nil when the message was handed to the far server without error.
	Err *Error `json:"error,omitempty"`
}

// Bus topics and event types shared by both sides.
const (
	// TopicToSIP carries events for the SIP side (messages from XMPP users,
	// errors about messages that came from SIP).
	TopicToSIP = "to-sip"
	// TopicToXMPP carries events for the component.
	TopicToXMPP = "to-xmpp"

	EventMessage      = "message"       // Data: Message
	EventMessageError = "message-error" // Data: MessageError
	EventResult       = "result"        // Data: Result
)
