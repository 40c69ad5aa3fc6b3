package sipside

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/shared/model"
)

// reasonPhrase is the RFC 3261 §21 phrase for the codes Parley sends.
func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Moved Temporarily"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Unsupported URI Scheme"
	case 420:
		return "Bad Extension"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	}
	switch code / 100 {
	case 2:
		return "OK"
	case 3:
		return "Redirection"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	case 6:
		return "Global Failure"
	}
	return "Unknown"
}

// sipError is a request Parley refuses, in SIP terms: the status, the
// reason phrase and the headers the answer must carry (Accept, Allow,
// Retry-After...). Err, when set, is the cause for the log.
type sipError struct {
	Status  int
	Reason  string
	Headers []sip.Header
	Err     error
}

func (e *sipError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("SIP %d %s: %v", e.Status, e.Reason, e.Err)
	}
	return fmt.Sprintf("SIP %d %s", e.Status, e.Reason)
}

func (e *sipError) Unwrap() error { return e.Err }

// refuse builds a sipError with the standard phrase unless reason is given.
func refuse(status int, reason string, cause error, hdrs ...sip.Header) *sipError {
	if reason == "" {
		reason = reasonPhrase(status)
	}
	return &sipError{Status: status, Reason: reason, Headers: hdrs, Err: cause}
}

// fromModelError turns the XMPP side's verdict into the final response
// (RFC 7247 §7.1, Table E1: model.FromXMPP already chose SIPStatus). The
// XMPP <text/> becomes the reason phrase (R7247-12).
func fromModelError(e model.Error) *sipError {
	status := e.SIPStatus
	if status < 300 || status > 699 {
		status = model.FromXMPP(e.Condition, "").SIPStatus
		if status < 300 || status > 699 {
			status = 500
		}
	}
	return refuse(status, cleanReason(e.Text), nil)
}

// maxReasonLen bounds a reason phrase built from foreign text.
const maxReasonLen = 200

// cleanReason makes text safe as a reason phrase: one line of printable
// characters, bounded. Empty means "use the standard phrase".
func cleanReason(text string) string {
	var b strings.Builder
	for _, r := range text {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if b.Len()+len(string(r)) > maxReasonLen {
			break
		}
		b.WriteRune(r)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
