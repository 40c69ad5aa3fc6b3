package sipside

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// Reading the text out of an inbound MESSAGE body: text/plain, or
// message/cpim (RFC 3862) wrapping text/plain. Pure functions.

var (
	errCPIMNoHeaderEnd = errors.New("message/cpim: no blank line after the CPIM headers")
	errCPIMNoMIMEEnd   = errors.New("message/cpim: no blank line after the MIME headers")
	errCPIMBadHeader   = errors.New("message/cpim: header line without a colon")
)

// text is what a MESSAGE body carries for the XMPP side.
type text struct {
	Body string
	// Lang is the encapsulated Content-Language of a CPIM body, if any.
	Lang string
}

// unsupportedType is the 415 answer, with the Accept header RFC 3261 §8.2.3
// asks for.
func unsupportedType(ct string) *sipError {
	return refuse(415, "", fmt.Errorf("content type %q", ct), sip.NewHeader("Accept", accepted))
}

// extractText returns the text a MESSAGE body carries, or the answer to
// refuse it with: 415 for a type other than text/plain or message/cpim
// around text/plain, 400 for malformed headers, CPIM, or text that is not
// UTF-8 or holds control characters XML cannot carry.
func extractText(contentType string, body []byte) (text, *sipError) {
	if contentType == "" {
		// RFC 3261 §7.4.1: a body without a type; we will not guess.
		return text{}, unsupportedType("")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return text{}, refuse(400, "Malformed Content-Type", err)
	}
	switch mt {
	case "text/plain":
		// Any charset parameter is accepted; the bytes must be UTF-8.
		return checkText(body, "")
	case "message/cpim":
		hdrs, inner, err := unwrapCPIM(body)
		if err != nil {
			return text{}, refuse(400, "Malformed message/cpim", err)
		}
		innerType := hdrs["content-type"]
		if innerType == "" {
			innerType = "text/plain" // RFC 2045 §5.2 default
		}
		imt, _, err := mime.ParseMediaType(innerType)
		if err != nil {
			return text{}, refuse(400, "Malformed Content-Type in message/cpim", err)
		}
		if imt != "text/plain" {
			return text{}, unsupportedType("message/cpim; " + imt)
		}
		return checkText(inner, firstLanguage(hdrs["content-language"]))
	default:
		return text{}, unsupportedType(mt)
	}
}

// checkText accepts UTF-8 text that an XMPP stanza can carry.
func checkText(b []byte, lang string) (text, *sipError) {
	if !utf8.Valid(b) {
		return text{}, refuse(400, "Body is not valid UTF-8", nil)
	}
	s := string(b)
	for _, r := range s {
		if !xmlChar(r) {
			return text{}, refuse(400, "Body holds characters XML cannot carry", fmt.Errorf("character %U", r))
		}
	}
	return text{Body: s, Lang: lang}, nil
}

// xmlChar is the XML 1.0 Char production (§2.2).
func xmlChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20:
		return false
	case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
		return false
	}
	return r <= 0x10FFFF
}

// unwrapCPIM splits a message/cpim body (RFC 3862 §2): CPIM headers, a blank
// line, the encapsulated MIME headers, a blank line, the content. It returns
// the MIME headers (names in lower case) and the content. CRLF is the line
// end; bare LF is tolerated.
func unwrapCPIM(b []byte) (map[string]string, []byte, error) {
	_, rest, ok := cutBlankLine(b)
	if !ok {
		return nil, nil, errCPIMNoHeaderEnd
	}
	mimeBlock, content, ok := cutBlankLine(rest)
	if !ok {
		return nil, nil, errCPIMNoMIMEEnd
	}
	hdrs := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(string(mimeBlock), "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("%w: %q", errCPIMBadHeader, line)
		}
		hdrs[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return hdrs, content, nil
}

// cutBlankLine splits b at the first empty line, which may also be the
// very first line (an empty header block).
func cutBlankLine(b []byte) (head, rest []byte, ok bool) {
	for _, sep := range [][]byte{[]byte("\r\n"), []byte("\n")} {
		if bytes.HasPrefix(b, sep) {
			return nil, b[len(sep):], true
		}
	}
	crlf := bytes.Index(b, []byte("\r\n\r\n"))
	lf := bytes.Index(b, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf <= lf):
		return b[:crlf], b[crlf+4:], true
	case lf >= 0:
		return b[:lf], b[lf+2:], true
	}
	return nil, nil, false
}

// firstLanguage takes the first tag of a Content-Language list, if it is a
// plausible language tag (RFC 5646 characters only).
func firstLanguage(v string) string {
	tag, _, _ := strings.Cut(v, ",")
	tag = strings.TrimSpace(tag)
	if tag == "" || len(tag) > 35 {
		return ""
	}
	for _, r := range tag {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return ""
		}
	}
	return tag
}
