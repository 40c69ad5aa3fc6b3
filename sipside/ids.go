package sipside

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// inboundEventPrefix marks bus events sipside publishes for inbound MESSAGEs.
const inboundEventPrefix = "s:"

// inboundID derives a message id from what identifies a request across
// retransmissions (RFC 3261 §17.2.3 without the branch, which a proxy may
// change on a retry): Call-ID, CSeq and From tag. The same MESSAGE arriving
// twice yields the same id, so the component's de-duplication drops the
// second copy.
func inboundID(req *sip.Request) string {
	var seq, method, tag string
	if c := req.CSeq(); c != nil {
		seq, method = strconv.FormatUint(uint64(c.SeqNo), 10), string(c.MethodName)
	}
	if f := req.From(); f != nil {
		tag, _ = f.Params.Get("tag")
	}
	return "sip-" + digest(callID(req), seq, method, tag)
}

// outboundCallID derives the Call-ID of the MESSAGE for a bus event, so that
// a redelivery after a crash sends a request the far side can recognise as
// the same one.
func outboundCallID(eventID string) string {
	return digest("parley-message", eventID) + "@parley"
}

// outboundBranch is the Via branch of the MESSAGE for a bus event: stable
// across redeliveries, with the RFC 3261 magic cookie.
func outboundBranch(eventID string) string {
	return sip.RFC3261BranchMagicCookie + digest("parley-branch", eventID)
}

// outboundTag is the From tag of the MESSAGE for a bus event.
func outboundTag(eventID string) string {
	return digest("parley-tag", eventID)[:16]
}

// digest hashes its parts unambiguously into 32 hex characters.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
