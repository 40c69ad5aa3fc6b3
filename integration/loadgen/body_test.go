package loadgen

import (
	"testing"
	"time"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, 64, 200} {
		b := AppendBody(nil, 7, 123456, 987654321, size)
		if size > 30 && len(b) != size {
			t.Errorf("size %d: body is %d bytes: %q", size, len(b), b)
		}
		tag, seq, ns, ok := ParseBody(append(b, '\n'))
		if !ok || tag != 7 || seq != 123456 || ns != 987654321 {
			t.Errorf("size %d: ParseBody(%q) = %d %d %d %v", size, b, tag, seq, ns, ok)
		}
	}
	for _, bad := range []string{"", "lg.", "lg.1.2", "lg.1.2.x", "hello", "lg.99999999999.1.1", "lg.1.2.3.4"} {
		if _, _, _, ok := ParseBody([]byte(bad)); ok {
			t.Errorf("ParseBody(%q) accepted", bad)
		}
	}
	id := AppendID(nil, 3, 42)
	if tag, seq, ok := ParseID(string(id)); !ok || tag != 3 || seq != 42 {
		t.Errorf("ParseID(%q) = %d %d %v", id, tag, seq, ok)
	}
}

func TestPercentile(t *testing.T) {
	var s []int64
	for i := int64(1); i <= 100; i++ {
		s = append(s, i)
	}
	for q, want := range map[float64]int64{0.5: 50, 0.99: 99, 1: 100, 0.001: 1} {
		if got := Percentile(s, q); got != time.Duration(want) {
			t.Errorf("p%v = %v, want %v", q, got, want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}

// loopSender delivers every message to the recorder at once, after an
// optional loss of every n-th message.
type loopSender struct {
	rec    *Recorder
	lossN  uint64
	failN  uint64
	queued [][]byte
}

func (l *loopSender) Send(tag uint32, seq uint64, body []byte) error {
	switch {
	case l.lossN > 0 && seq%l.lossN == 0:
	case l.failN > 0 && seq%l.failN == 1:
		l.rec.Fail(tag, seq, "test")
	default:
		l.queued = append(l.queued, append([]byte(nil), body...))
	}
	return nil
}

func (l *loopSender) Flush() error {
	for _, b := range l.queued {
		l.rec.Deliver(b)
	}
	l.queued = l.queued[:0]
	return nil
}

func TestRunClosedAndPaced(t *testing.T) {
	rec := NewRecorder(NewClock())
	ctx := t.Context()
	res, err := Run(ctx, rec, &loopSender{rec: rec}, RunConfig{Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Window: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Throughput <= 0 || res.Lost != 0 || res.Received != res.Sent || res.Samples == 0 {
		t.Errorf("closed: %+v", res)
	}
	res, err = Run(ctx, rec, &loopSender{rec: rec, failN: 10}, RunConfig{Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent < 450 || res.Sent > 550 || res.Failed == 0 || res.Lost != 0 || res.Received+res.Failed != res.Sent {
		t.Errorf("paced: %+v", res)
	}
	if res.Throughput < 1500 || res.Throughput > 2500 {
		t.Errorf("paced throughput %.0f, want about 1800", res.Throughput)
	}
	// Losses stall a closed loop with a small window: reported, not hung.
	res, err = Run(ctx, rec, &loopSender{rec: rec, lossN: 3}, RunConfig{Warmup: 10 * time.Millisecond, Duration: time.Second, Window: 5, Stall: 100 * time.Millisecond, Drain: 50 * time.Millisecond})
	if err == nil || res.Lost == 0 {
		t.Errorf("lossy closed loop: err %v, %+v", err, res)
	}
}
