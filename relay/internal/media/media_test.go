package media

import "testing"

func TestULawRoundTrip(t *testing.T) {
	pcm := Tone(1000, 0.5, 0, 800)
	dec := DecodeULaw(EncodeULaw(pcm, nil), nil)
	for i := range pcm {
		d := int(pcm[i]) - int(dec[i])
		if d < 0 {
			d = -d
		}
		// µ-law error grows with amplitude: at most half a quantisation step.
		limit := 4 + abs(int(pcm[i]))/16
		if d > limit {
			t.Fatalf("sample %d: %d → %d", i, pcm[i], dec[i])
		}
	}
	// Known code points: 0 → 0xff, full scale → 0x80/0x00.
	if EncodeULaw([]int16{0}, nil)[0] != 0xff || EncodeULaw([]int16{32767}, nil)[0] != 0x80 || EncodeULaw([]int16{-32768}, nil)[0] != 0x00 {
		t.Fatal("µ-law code points")
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestDetectCanFail(t *testing.T) {
	ok := func(f float64) bool {
		return Detect(DecodeULaw(EncodeULaw(Tone(f, 0.5, 0, 1600), nil), nil), 1000, 10, Probes...)
	}
	if !ok(1000) {
		t.Fatal("1 kHz through µ-law not detected")
	}
	for _, f := range []float64{440, 900, 1200} {
		if ok(f) {
			t.Fatalf("%v Hz detected as 1 kHz", f)
		}
	}
	if Detect(make([]int16, 1600), 1000, 10, Probes...) {
		t.Fatal("silence detected as 1 kHz")
	}
}
