package srtpx

// window is a sliding-window replay detector (RFC 3711 §3.3.2) that, unlike
// pion's, allocates nothing per packet: Check hands back a function bound
// once at construction that commits the index Check accepted. The SRTP
// contexts call Check and the returned function from one goroutine.
type window struct {
	size    uint64
	max     uint64
	latest  uint64
	started bool
	mask    []uint64
	pending uint64
	accept  func()
}

func newWindow(size uint, max uint64) *window {
	if size < 64 {
		size = 64
	}
	w := &window{size: uint64(size), max: max, mask: make([]uint64, (size+63)/64)}
	w.accept = w.commit
	return w
}

func (w *window) bit(i uint64) (word int, bit uint64) {
	i %= uint64(len(w.mask)) * 64
	return int(i / 64), 1 << (i % 64)
}

// Check implements replaydetector.ReplayDetector.
func (w *window) Check(index uint64) (func(), bool) {
	if index > w.max {
		return nil, false
	}
	if w.started && index <= w.latest {
		if w.latest-index >= w.size {
			return nil, false
		}
		if wd, b := w.bit(index); w.mask[wd]&b != 0 {
			return nil, false
		}
	}
	w.pending = index
	return w.accept, true
}

func (w *window) commit() {
	index := w.pending
	if !w.started || index > w.latest {
		from := w.latest + 1
		if !w.started || index-w.latest >= uint64(len(w.mask))*64 {
			clear(w.mask)
		} else {
			for i := from; i < index; i++ {
				wd, b := w.bit(i)
				w.mask[wd] &^= b
			}
		}
		w.latest, w.started = index, true
	}
	wd, b := w.bit(index)
	w.mask[wd] |= b
}
