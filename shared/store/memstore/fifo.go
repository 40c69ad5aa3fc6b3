package memstore

// chunkSize is the number of items per fifo chunk.
const chunkSize = 256

// fifo is an unbounded queue of items in fixed-size chunks, so that a long
// queue never gets copied as a whole and drained chunks are freed.
type fifo struct {
	head, tail *chunk
	n          int
}

type chunk struct {
	items [chunkSize]item
	r, w  int
	next  *chunk
}

func (q *fifo) len() int { return q.n }

func (q *fifo) push(it item) {
	if q.tail == nil || q.tail.w == chunkSize {
		c := &chunk{}
		if q.tail == nil {
			q.head = c
		} else {
			q.tail.next = c
		}
		q.tail = c
	}
	q.tail.items[q.tail.w] = it
	q.tail.w++
	q.n++
}

// popN appends up to max items to dst, oldest first, and removes them.
func (q *fifo) popN(dst []item, max int) []item {
	for max > 0 && q.head != nil {
		c := q.head
		k := min(max, c.w-c.r)
		dst = append(dst, c.items[c.r:c.r+k]...)
		clear(c.items[c.r : c.r+k])
		c.r += k
		q.n -= k
		max -= k
		if c.r == c.w {
			if c.w < chunkSize {
				c.r, c.w = 0, 0 // the tail, now empty: reuse it
				break
			}
			q.head = c.next
			if q.head == nil {
				q.tail = nil
			}
		}
	}
	return dst
}
