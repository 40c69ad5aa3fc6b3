package lyncemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
)

// Wire details of Lync IM (lync-dialect.md §1.5, §2). Values are the ones
// the captures and SIPE show; each constant says where it comes from.

const (
	// DefaultUserAgent is a Skype for Business 2015 client (lync-dialect.md
	// §7 item 18: peers sniff "UCCAPI").
	DefaultUserAgent = "UCCAPI/16.0.4417.1000 OC/16.0.4417.1000 (Skype for Business)"

	// AcceptTypes is the a=accept-types list of the SfB 16.0.4417 client,
	// with the trailing space the capture has (§2.1, §6: parsers must
	// tolerate it).
	AcceptTypes = "text/plain multipart/alternative image/gif text/rtf text/html application/x-ms-ink application/ms-imdn+xml text/x-msmsgsinvite "

	// allowMethods is the Allow header of Lync IM INVITEs (§2.1).
	allowMethods = "INVITE, BYE, ACK, CANCEL, INFO, MESSAGE, UPDATE, REFER, NOTIFY, BENOTIFY"

	// keepAliveUAC and keepAliveUAS are the ms-keep-alive values of a
	// request and of its answer ([MS-CONMGMT] §2.2.1; §1.7).
	keepAliveUAC = "UAC;hop-hop=yes"
	keepAliveUAS = "UAS;tcp=no;hop-hop=yes;end-end=no;timeout=300"

	// Content types.
	ctSDP        = "application/sdp"
	ctConfInvite = "application/ms-conf-invite+xml"
	ctXML        = "application/xml"
	ctPlain      = "text/plain; charset=UTF-8"
	ctHTML       = "text/html; charset=UTF-8"

	// warning309 is the policy answer's Warning text (§2.2, SIPE
	// sipe-im.c): "Message contents not allowed by policy".
	warning309Text = "Message contents not allowed by policy"
)

// inviteSupported are the option tags of an SfB IM INVITE, one Supported
// header each, in the capture's order (§1.5, TC sample 01).
var inviteSupported = []string{
	"ms-dialog-route-set-update",
	"ms-embedded-first-message",
	"ms-delayed-accept",
	"ms-renders-isf",
	"ms-renders-gif",
	"ms-renders-mime-alternative",
	"timer",
	"histinfo",
	"ms-safe-transfer",
	"ms-sender",
	"ms-early-media",
	"com.microsoft.rtc-multiparty",
	"ms-conf-invite",
}

// knownOptionTags are the tags a Lync endpoint understands in Require:
// anything else gets 420 Bad Extension (RFC 3261 §8.2.2.3).
var knownOptionTags = func() map[string]bool {
	m := map[string]bool{"ms-text-format": true, "ms-benotify": true, "ms-piggyback-first-notify": true,
		"eventlist": true, "com.microsoft.autoextend": true, "replaces": true, "100rel": true,
		"adhoclist": true, "categorylist": true}
	for _, t := range inviteSupported {
		m[t] = true
	}
	return m
}()

// acceptedIMTypes are the MESSAGE bodies a Lync client renders or
// handles (its accept-types); others get 415 (SIPE
// process_incoming_message answers 415 the same way).
var acceptedIMTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(AcceptTypes) {
		m[t] = true
	}
	m["multipart/related"] = true
	return m
}()

// EncodeTextFormat renders an ms-text-format / ms-im-format value:
// "<type>; charset=UTF-8;ms-body=<base64>" (§2.1, SIPE sipe_im_invite()).
func EncodeTextFormat(mediaType, body string) string {
	return mediaType + "; charset=UTF-8;ms-body=" + base64.StdEncoding.EncodeToString([]byte(body))
}

// ErrNoMsBody is returned for a format header without ms-body.
var ErrNoMsBody = errors.New("lyncemu: no ms-body parameter")

// ParseTextFormat reads an ms-text-format / ms-im-format value: the media
// type (lower case) and the decoded body. Parameters other than ms-body
// (charset, msgr) are ignored; whitespace is tolerated.
func ParseTextFormat(v string) (mediaType, body string, err error) {
	parts := strings.Split(v, ";")
	mediaType = strings.ToLower(strings.TrimSpace(parts[0]))
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "ms-body") {
			continue
		}
		val = strings.TrimSpace(val)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, derr := enc.DecodeString(val); derr == nil {
				return mediaType, string(b), nil
			}
		}
		return mediaType, "", fmt.Errorf("lyncemu: ms-body %q is not base64", val)
	}
	return mediaType, "", ErrNoMsBody
}

// messageSDP is the SDP of an IM session: target is "null" in an offer and
// "sip:<own uri>" in an answer (§2.1; TC samples 01, 02).
func messageSDP(ip string, port int, target string) string {
	lines := []string{
		"v=0",
		"o=- 0 0 IN IP4 " + ip,
		"s=session",
		"c=IN IP4 " + ip,
		"t=0 0",
		"m=message " + strconv.Itoa(port) + " sip " + target,
		"a=accept-types:" + AcceptTypes,
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// mLineRE matches an IM media line; captures keep trailing spaces.
var mLineRE = regexp.MustCompile(`^m=(message|x-ms-message) (\d+) (\S+) (\S+)\s*$`)

// parseMessageSDP finds the m=message line of an IM offer or answer.
func parseMessageSDP(body string) (media, target string, ok bool) {
	for _, l := range strings.Split(body, "\n") {
		if m := mLineRE.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			return m[1], m[4], true
		}
	}
	return "", "", false
}

// keyboardActivity is the typing INFO body (SIPE
// sipe_core_user_feedback_typing(); sample 06): status "type" or "idle".
func keyboardActivity(status string) string {
	return `<?xml version="1.0"?><KeyboardActivity> <status status="` + status + `" /></KeyboardActivity>`
}

var kbStatusRE = regexp.MustCompile(`<KeyboardActivity[^>]*>\s*<status\s+status\s*=\s*"([^"]*)"`)

// parseKeyboardActivity returns the status of a KeyboardActivity body.
func parseKeyboardActivity(body string) (string, bool) {
	m := kbStatusRE.FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// confInviteBody is an MCU conference invitation (§2.5; the element names
// follow SIPE process_incoming_invite_conf() and the greenl.ee blog; the
// exact schema is INFERENCE).
func confInviteBody(focusURI, subject string) string {
	return `<?xml version="1.0"?>` +
		`<Conferencing version="2.0"><focus-uri>` + html.EscapeString(focusURI) + `</focus-uri>` +
		`<subject>` + html.EscapeString(subject) + `</subject>` +
		`<im available="true"><first-im/></im></Conferencing>`
}

var focusRE = regexp.MustCompile(`<focus-uri>([^<]*)</focus-uri>`)

func parseFocusURI(body string) string {
	if m := focusRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// htmlToText is a crude rendering of an HTML fragment as plain text, for
// the ms-text-format part that accompanies ms-im-format text/html.
func htmlToText(s string) string {
	return strings.TrimSpace(html.UnescapeString(tagRE.ReplaceAllString(s, "")))
}

// mediaType is the lower-case type/subtype of a Content-Type value.
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// splitTags splits the values of Supported/Require headers into tags.
func splitTags(values []string) []string {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// Random tokens in the shapes Lync uses.

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("lyncemu: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return b
}

// hexToken is n random bytes in lower-case hex.
func hexToken(n int) string { return hex.EncodeToString(randomBytes(n)) }

// newTag is a 10-hex-digit tag, as in "tag=9d5c2a38ba" (TC sample 01).
func newTag() string { return hexToken(5) }

// newEpid is an endpoint id, 10 hex digits ("epid=b84a59c035").
func newEpid() string { return hexToken(5) }

// newCallID is a 32-hex-digit Call-ID.
func newCallID() string { return hexToken(16) }

// newBranch is an RFC 3261 branch.
func newBranch() string { return "z9hG4bK" + hexToken(8) }

// newConversationID is an SfB Ms-Conversation-ID: base64 of 22 bytes
// ("AdKjt1Xy9lDJ8KRjRYaBRsRaq4N/vw==").
func newConversationID() string { return base64.StdEncoding.EncodeToString(randomBytes(22)) }

// newGruuOpaque is the opaque part of a GRUU, "user:epid:<b64url>" as in
// "opaque=user:epid:hYnsEUpJhlGc0T-xd_I7vAAA".
func newGruuOpaque() string {
	return "user:epid:" + base64.RawURLEncoding.EncodeToString(randomBytes(16)) + "AA"
}

// newSig is an opaque signature-like token (ms-route-sig, ms-key-info).
func newSig(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// newInstance is a +sip.instance URN (RFC 4122 version 4 UUID).
func newInstance() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return "<urn:uuid:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:] + ">"
}
