package httpaudit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
)

// recorder passes a response through and remembers its status.
type recorder struct {
	http.ResponseWriter
	code int
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps sendfile for handlers that serve files.
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

// Flush and Hijack keep streaming and upgrades working for handlers that
// type-assert; Unwrap serves http.ResponseController.
func (w *recorder) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// holder keeps a fail-closed response back until its audit event is
// acknowledged: whole when it is at most limit bytes; otherwise until limit
// bytes are held, when confirm delivers the event and the response streams
// on (or, refused, the handler's further writes fail).
type holder struct {
	header  http.Header
	code    int
	body    bytes.Buffer
	limit   int64
	w       http.ResponseWriter
	confirm func() bool
	state   holdState
}

type holdState int

const (
	held      holdState = iota // the response is held back
	streaming                  // the event was acknowledged: writes go through
	refused                    // the event was not acknowledged: 503 was sent
)

// errRefused is what a fail-closed handler's writes return once its event
// could not be recorded.
var errRefused = errors.New("httpaudit: the response was refused: its audit event was not acknowledged")

func (h *holder) Header() http.Header { return h.header }

func (h *holder) WriteHeader(code int) {
	if h.code == 0 && code >= 200 {
		h.code = code
	}
}

func (h *holder) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	switch h.state {
	case streaming:
		return h.w.Write(b)
	case refused:
		return 0, errRefused
	}
	if int64(h.body.Len()+len(b)) <= h.limit {
		return h.body.Write(b)
	}
	if !h.confirm() {
		h.state = refused
		return 0, errRefused
	}
	h.release()
	return h.w.Write(b)
}

func (h *holder) status() int {
	if h.code == 0 {
		return http.StatusOK
	}
	return h.code
}

// release sends what is held, and lets the rest of the response through.
func (h *holder) release() {
	dst := h.w.Header()
	for k := range dst {
		if _, ok := h.header[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range h.header {
		dst[k] = v
	}
	h.w.WriteHeader(h.status())
	h.w.Write(h.body.Bytes())
	h.body = bytes.Buffer{}
	h.state = streaming
}
