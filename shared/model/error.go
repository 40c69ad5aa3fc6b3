package model

import (
	"fmt"
	"strconv"
)

// ErrorType is the XMPP error type (RFC 6120 §8.3.2).
type ErrorType string

const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Error is a delivery error in both protocols' terms at once: the XMPP
// defined condition and type, and the SIP status code, mapped per RFC 7247 §7.
type Error struct {
	Condition string    `json:"condition"`
	Type      ErrorType `json:"type"`
	SIPStatus int       `json:"sip_status"`
	// Text is the human-readable reason (SIP reason phrase or XMPP <text/>).
	Text string `json:"text,omitempty"`
}

func (e Error) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("%s (SIP %d): %s", e.Condition, e.SIPStatus, e.Text)
	}
	return fmt.Sprintf("%s (SIP %d)", e.Condition, e.SIPStatus)
}

// XMPP defined conditions (RFC 6120 §8.3.3).
const (
	BadRequest            = "bad-request"
	Conflict              = "conflict"
	FeatureNotImplemented = "feature-not-implemented"
	Forbidden             = "forbidden"
	Gone                  = "gone"
	InternalServerError   = "internal-server-error"
	ItemNotFound          = "item-not-found"
	JIDMalformed          = "jid-malformed"
	NotAcceptable         = "not-acceptable"
	NotAllowed            = "not-allowed"
	NotAuthorized         = "not-authorized"
	PolicyViolation       = "policy-violation"
	RecipientUnavailable  = "recipient-unavailable"
	Redirect              = "redirect"
	RegistrationRequired  = "registration-required"
	RemoteServerNotFound  = "remote-server-not-found"
	RemoteServerTimeout   = "remote-server-timeout"
	ResourceConstraint    = "resource-constraint"
	ServiceUnavailable    = "service-unavailable"
	SubscriptionRequired  = "subscription-required"
	UndefinedCondition    = "undefined-condition"
	UnexpectedRequest     = "unexpected-request"
)

// xmppToSIP is RFC 7247 §7.1 (Table E1 in ../shared/reference/standards.md).
var xmppToSIP = map[string]int{
	BadRequest:            400,
	Conflict:              400,
	FeatureNotImplemented: 501,
	Forbidden:             403,
	Gone:                  410,
	InternalServerError:   500,
	ItemNotFound:          404,
	JIDMalformed:          400,
	NotAcceptable:         406,
	NotAllowed:            403,
	NotAuthorized:         401,
	PolicyViolation:       403,
	RecipientUnavailable:  480,
	Redirect:              302,
	RegistrationRequired:  400,
	RemoteServerNotFound:  404,
	RemoteServerTimeout:   408,
	ResourceConstraint:    500,
	ServiceUnavailable:    503,
	SubscriptionRequired:  400,
	UndefinedCondition:    400,
	UnexpectedRequest:     400,
}

// sipToXMPP is RFC 7247 §7.2 (Table E2): exact codes; classes fall back below.
var sipToXMPP = map[int]string{
	300: Redirect, 301: Gone, 302: Redirect, 305: Redirect, 380: Redirect,
	400: BadRequest, 401: NotAuthorized, 402: BadRequest, 403: Forbidden,
	404: ItemNotFound, 405: FeatureNotImplemented, 406: NotAcceptable,
	407: NotAuthorized, 408: RemoteServerTimeout, 410: Gone,
	413: PolicyViolation, 414: PolicyViolation, 415: NotAcceptable,
	416: JIDMalformed, 420: FeatureNotImplemented, 421: NotAcceptable,
	423: ResourceConstraint, 430: RecipientUnavailable, 433: PolicyViolation,
	480: RecipientUnavailable, 481: ItemNotFound, 482: NotAcceptable,
	483: NotAcceptable, 484: ItemNotFound, 485: ItemNotFound,
	486: RecipientUnavailable, 487: ServiceUnavailable, 488: NotAcceptable,
	489: PolicyViolation, 491: UnexpectedRequest, 493: BadRequest,
	500: InternalServerError, 501: FeatureNotImplemented,
	502: RemoteServerNotFound, 503: ServiceUnavailable,
	504: RemoteServerTimeout, 505: NotAcceptable, 513: PolicyViolation,
	600: ServiceUnavailable, 603: ServiceUnavailable, 604: ItemNotFound,
	606: NotAcceptable,
}

// typeOf gives the XMPP error type for a condition (RFC 6120 §8.3.3 and
// R7247-12): auth for 401/407, wait for transient failures, modify for
// requests the sender could fix, cancel otherwise.
func typeOf(condition string, status int) ErrorType {
	switch status {
	case 401, 407:
		return Auth
	case 408, 480, 486, 503, 504:
		return Wait
	case 400, 406, 415, 484, 488:
		return Modify
	}
	switch condition {
	case NotAuthorized:
		return Auth
	case RemoteServerTimeout, RecipientUnavailable, ResourceConstraint:
		return Wait
	case BadRequest, JIDMalformed, NotAcceptable, PolicyViolation:
		return Modify
	}
	return Cancel
}

// FromSIP maps a SIP final error response (3xx–6xx) to an Error.
func FromSIP(status int, reason string) Error {
	cond, ok := sipToXMPP[status]
	if !ok {
		switch {
		case status >= 300 && status < 400:
			cond = Redirect
		case status >= 400 && status < 500:
			cond = BadRequest
		case status >= 500 && status < 600:
			cond = InternalServerError
		default:
			cond = ServiceUnavailable
		}
	}
	return Error{Condition: cond, Type: typeOf(cond, status), SIPStatus: status, Text: reason}
}

// FromXMPP maps an XMPP defined condition to an Error. An unknown condition
// is treated as undefined-condition (SIP 400).
func FromXMPP(condition, text string) Error {
	status, ok := xmppToSIP[condition]
	if !ok {
		condition, status = UndefinedCondition, 400
	}
	return Error{Condition: condition, Type: typeOf(condition, status), SIPStatus: status, Text: text}
}

// New builds an Error for a condition Parley itself detects.
func New(condition, text string) Error { return FromXMPP(condition, text) }

// StatusText renders the SIP status for logs ("404").
func (e Error) StatusText() string { return strconv.Itoa(e.SIPStatus) }
