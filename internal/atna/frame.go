package atna

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame bounds a syslog frame (header and message) by default.
const DefaultMaxFrame = 64 << 10

// FrameReader reads RFC 5425 octet-counted frames, "MSG-LEN SP SYSLOG-MSG",
// where MSG-LEN is NONZERO-DIGIT *DIGIT. A line feed (or CR LF) between
// frames, which some senders add, is skipped.
//
// Any other byte where a frame should begin, a length over the limit, or a
// stream that ends inside a frame is a *Rejection (ReasonFrame or
// ReasonFrameTooLarge): the boundary of the next frame is then unknown,
// and the caller must close the connection.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewFrameReader reads frames of at most max bytes (DefaultMaxFrame when
// max ≤ 0) from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

// Next returns the next frame's message, valid until the next call. It
// returns io.EOF when the stream ends between frames, a *Rejection when the
// framing is wrong, and the reader's error otherwise.
func (f *FrameReader) Next() ([]byte, error) {
	n, err := f.length()
	if err != nil {
		return nil, err
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, reject(ReasonFrame, "the stream ended inside a frame (shorter than its octet count)")
		}
		return nil, err
	}
	return f.buf, nil
}

// length reads MSG-LEN SP.
func (f *FrameReader) length() (int, error) {
	b, err := f.r.ReadByte()
	for err == nil && (b == '\n' || b == '\r') {
		b, err = f.r.ReadByte()
	}
	if err != nil {
		return 0, err // io.EOF between frames: a clean end
	}
	if b < '1' || b > '9' {
		return 0, reject(ReasonFrame, "a frame must begin with its octet count")
	}
	n := int(b - '0')
	for {
		b, err = f.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, reject(ReasonFrame, "the stream ended inside a frame header")
			}
			return 0, err
		}
		if b == ' ' {
			break
		}
		if b < '0' || b > '9' {
			return 0, reject(ReasonFrame, "the octet count must be followed by a space")
		}
		if n = n*10 + int(b-'0'); n > f.max { // checked per digit: never overflows
			return 0, reject(ReasonFrameTooLarge, fmt.Sprintf("a frame of more than %d octets", f.max))
		}
	}
	if n > f.max {
		return 0, reject(ReasonFrameTooLarge, fmt.Sprintf("a frame of more than %d octets", f.max))
	}
	return n, nil
}
