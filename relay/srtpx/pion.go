package srtpx

import (
	"errors"
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
	"github.com/pion/transport/v2/replaydetector"
)

// pionTransform is pion/srtp v2: one context for RTP and one for RTCP, so
// the two families keep separate state.
type pionTransform struct {
	rtp     *srtp.Context
	rtpHdr  rtp.Header
	rtcp    *srtp.Context
	rtcpHdr rtcp.Header
}

func newPion(suite Suite, keys []KeyParams, win int) (*pionTransform, error) {
	profile := srtp.ProtectionProfileAes128CmHmacSha1_80
	if suite == AES_CM_128_HMAC_SHA1_32 {
		profile = srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	mk := func() (*srtp.Context, error) {
		opts := []srtp.ContextOption{}
		if win > 0 {
			opts = append(opts,
				srtp.SRTPReplayDetectorFactory(func() replaydetector.ReplayDetector { return newWindow(uint(win), 1<<48-1) }),
				srtp.SRTCPReplayDetectorFactory(func() replaydetector.ReplayDetector { return newWindow(uint(win), 1<<31-1) }))
		}
		if keys[0].MKI.Len > 0 {
			opts = append(opts, srtp.MasterKeyIndicator(keys[0].MKI.Bytes()))
		}
		ctx, err := srtp.CreateContext(keys[0].Key(), keys[0].Salt(), profile, opts...)
		if err != nil {
			return nil, fmt.Errorf("srtpx: %w", err)
		}
		for _, k := range keys[1:] {
			if err := ctx.AddCipherForMKI(k.MKI.Bytes(), k.Key(), k.Salt()); err != nil {
				return nil, fmt.Errorf("srtpx: key MKI %d: %w", k.MKI.Value, err)
			}
		}
		return ctx, nil
	}
	var err error
	t := &pionTransform{}
	if t.rtp, err = mk(); err != nil {
		return nil, err
	}
	if t.rtcp, err = mk(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *pionTransform) protectRTP(buf []byte, n int) (int, error) {
	hl, err := t.rtpHdr.Unmarshal(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrShortPacket, err)
	}
	if t.rtpHdr.MarshalSize() != hl {
		// pion re-marshals the header in front of the payload; a header it
		// would write with a different size cannot be done in place.
		return 0, errHeaderSizeUnchanged
	}
	out, err := t.rtp.EncryptRTP(buf[:0], buf[:n], &t.rtpHdr)
	if err != nil {
		return 0, fmt.Errorf("srtpx: protect RTP: %w", err)
	}
	if &out[0] != &buf[0] {
		return 0, ErrBufferSize
	}
	return len(out), nil
}

func (t *pionTransform) unprotectRTP(b []byte) (int, error) {
	out, err := t.rtp.DecryptRTP(b[:0], b, &t.rtpHdr)
	if err != nil {
		return 0, mapErr(err)
	}
	return len(out), nil
}

func (t *pionTransform) protectRTCP(buf []byte, n int) (int, error) {
	out, err := t.rtcp.EncryptRTCP(buf[:n], buf[:n], &t.rtcpHdr)
	if err != nil {
		return 0, fmt.Errorf("srtpx: protect RTCP: %w", err)
	}
	if &out[0] != &buf[0] {
		return 0, ErrBufferSize
	}
	return len(out), nil
}

func (t *pionTransform) unprotectRTCP(b []byte) (int, error) {
	out, err := t.rtcp.DecryptRTCP(b, b, &t.rtcpHdr)
	if err != nil {
		return 0, mapErr(err)
	}
	return len(out), nil
}

// mapErr turns pion's errors into this package's sentinels where one fits.
func mapErr(err error) error {
	switch {
	case errors.Is(err, srtp.ErrFailedToVerifyAuthTag):
		return ErrAuth
	case errors.Is(err, srtp.ErrMKINotFound):
		return ErrUnknownMKI
	}
	// pion's duplicate-packet error type is unexported; it unwraps to a
	// "duplicated packet" sentinel that is unexported too.
	var dup interface{ Unwrap() error }
	if errors.As(err, &dup) && dup.Unwrap() != nil && dup.Unwrap().Error() == "duplicated packet" {
		return ErrReplay
	}
	return fmt.Errorf("srtpx: %w", err)
}
