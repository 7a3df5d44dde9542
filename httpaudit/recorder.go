package httpaudit

import (
	"bufio"
	"bytes"
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

// holder keeps a whole response back until its audit event is
// acknowledged (fail-closed routes).
type holder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

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
	return h.body.Write(b)
}

func (h *holder) status() int {
	if h.code == 0 {
		return http.StatusOK
	}
	return h.code
}

// release sends the held response.
func (h *holder) release(w http.ResponseWriter) {
	dst := w.Header()
	for k := range dst {
		if _, ok := h.header[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range h.header {
		dst[k] = v
	}
	w.WriteHeader(h.status())
	w.Write(h.body.Bytes())
}
