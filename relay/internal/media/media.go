// Package media makes and checks test audio for the relay's tests and
// benchmarks: a sine tone, G.711 µ-law (ITU-T G.711) both ways, RTP
// packetisation at 20 ms, and a Goertzel detector that tells which
// frequency a received signal carries.
//
// It must not know about the relay.
package media

import (
	"encoding/binary"
	"math"
)

// SampleRate is G.711's 8 kHz.
const SampleRate = 8000

// FrameSamples is 20 ms of G.711: 160 samples, 160 bytes.
const FrameSamples = 160

// Tone returns n samples of a sine at freq Hz, amplitude amp (0..1),
// starting at sample offset start (so consecutive frames join up).
func Tone(freq, amp float64, start, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(amp * 32767 * math.Sin(2*math.Pi*freq*float64(start+i)/SampleRate))
	}
	return s
}

// EncodeULaw is the G.711 µ-law encoder (bias 0x84, clip 32635).
func EncodeULaw(pcm []int16, out []byte) []byte {
	for _, x := range pcm {
		out = append(out, ulaw(x))
	}
	return out
}

func ulaw(x int16) byte {
	const bias, clip = 0x84, 32635
	v := int(x)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// DecodeULaw is the G.711 µ-law decoder.
func DecodeULaw(in []byte, out []int16) []int16 {
	for _, u := range in {
		u = ^u
		sign, exp, mant := u&0x80, int(u>>4)&7, int(u&0x0f)
		v := ((mant << 3) + 0x84) << exp
		v -= 0x84
		if sign != 0 {
			v = -v
		}
		out = append(out, int16(v))
	}
	return out
}

// Goertzel returns the power of freq in samples (Goertzel's algorithm),
// normalised by the number of samples.
func Goertzel(samples []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	for _, x := range samples {
		s := float64(x) + k*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - k*s1*s2
	return p / float64(len(samples)) / float64(len(samples))
}

// Detect reports whether freq dominates samples: its power is at least
// ratio times that at each of the probe frequencies, and it is not silence.
func Detect(samples []int16, freq, ratio float64, probes ...float64) bool {
	if len(samples) < FrameSamples {
		return false
	}
	p := Goertzel(samples, freq)
	if p < 1e3 {
		return false
	}
	for _, f := range probes {
		if Goertzel(samples, f)*ratio > p {
			return false
		}
	}
	return true
}

// Probes are frequencies to compare a 1 kHz detection against.
var Probes = []float64{300, 440, 700, 1300, 1800, 2500, 3200}

// RTP writes a 12-byte RTP header and the payload into buf and returns the
// packet.
func RTP(buf []byte, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	buf = append(buf[:0], 0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(buf[2:], seq)
	binary.BigEndian.PutUint32(buf[4:], ts)
	binary.BigEndian.PutUint32(buf[8:], ssrc)
	return append(buf, payload...)
}
