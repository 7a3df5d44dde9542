package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/custos-audit/custos/internal/store"
)

// Cursors are base64url(timestamp µs | index | HMAC-SHA256 truncated to 16
// bytes), so a client can neither forge nor alter one unnoticed. Only the
// canonical encoding is accepted: one cursor has one spelling.
const cursorLen = 8 + 8 + 16

var cursorEncoding = base64.RawURLEncoding.Strict()

func (a *API) encodeCursor(c store.Cursor) string {
	b := make([]byte, 16, cursorLen)
	binary.BigEndian.PutUint64(b, uint64(c.Timestamp.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], c.Index)
	b = append(b, a.cursorMAC(b)...)
	return cursorEncoding.EncodeToString(b)
}

func (a *API) decodeCursor(s string) (*store.Cursor, error) {
	// A cursor is 43 characters; a longer text is not decoded at all.
	if len(s) != cursorEncoding.EncodedLen(cursorLen) {
		return nil, invalidParam("cursor", "is not a cursor this server issued (altered or truncated); start again without it")
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || !hmac.Equal(b[16:], a.cursorMAC(b[:16])) {
		return nil, invalidParam("cursor", "is not a cursor this server issued (altered or truncated); start again without it")
	}
	return &store.Cursor{
		Timestamp: time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(),
		Index:     binary.BigEndian.Uint64(b[8:16]),
	}, nil
}

func (a *API) cursorMAC(b []byte) []byte {
	m := hmac.New(sha256.New, a.cfg.CursorKey)
	m.Write([]byte("custos cursor v1\x00"))
	m.Write(b)
	return m.Sum(nil)[:16]
}
