package lyncemu_test

import (
	"errors"
	"regexp"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/parleygw/parley/integration/lyncemu"
)

var mLine = regexp.MustCompile(`(?m)^m=(\S+) \d+ sip (\S+)\s*$`)

// sdpMessageLine returns the media and target of an m=message line.
func sdpMessageLine(sdp string) (media, target string) {
	m := mLine.FindStringSubmatch(strings.ReplaceAll(sdp, "\r", ""))
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

// supports reports whether a Supported header of m lists tag.
func supports(m interface{ GetHeaders(string) []sip.Header }, tag string) bool {
	if m == nil {
		return false
	}
	for _, h := range m.GetHeaders("Supported") {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

func asStatus(err error, se **lyncemu.StatusError) bool { return errors.As(err, se) }
