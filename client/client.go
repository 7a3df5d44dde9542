// Package client is a Go client for the Custos HTTP API. It depends only on
// the standard library and the custos domain types.
//
// Append returns only after the server acknowledged that the events are
// durably committed; the receipts carry each event's ledger index and leaf
// hash, which an inclusion proof later ties to a signed checkpoint.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

// Client talks to one Custos server with one bearer token.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for the server at baseURL (e.g. http://127.0.0.1:8080).
// A nil hc uses http.DefaultClient.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: hc}
}

// Error is a problem+json answer from the server.
type Error struct {
	Status int                 `json:"status"`
	Title  string              `json:"title"`
	Detail string              `json:"detail"`
	Errors []custos.FieldError `json:"errors"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "custos: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	return b.String()
}

// Append sends events and returns their receipts, in order.
func (c *Client) Append(ctx context.Context, events []custos.EventInput) ([]custos.Receipt, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, fmt.Errorf("custos: encode events: %w", err)
	}
	return c.AppendRaw(ctx, "application/json", body)
}

// AppendRaw sends an already encoded body: a JSON event, a JSON array, or
// NDJSON (contentType application/x-ndjson).
func (c *Client) AppendRaw(ctx context.Context, contentType string, body []byte) ([]custos.Receipt, error) {
	var out struct {
		Receipts []custos.Receipt `json:"receipts"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/events", contentType, body, &out)
	return out.Receipts, err
}

// AppendKeyed sends events with an idempotency key: sent again with the same
// key and the same events (after a timeout, a lost answer, a restart), it
// answers the receipts of the first request that committed, and the events
// are not appended twice. The same key with other events is refused (409).
// Keys are 1 to 128 printable ASCII characters and belong to the token that
// sent them; a random one per batch (for example 16 random bytes in hex) is
// right.
func (c *Client) AppendKeyed(ctx context.Context, key string, events []custos.EventInput) ([]custos.Receipt, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, fmt.Errorf("custos: encode events: %w", err)
	}
	return c.AppendRawKeyed(ctx, key, "application/json", body)
}

// AppendRawKeyed is AppendRaw with an idempotency key (see AppendKeyed). A
// retry must send the same bytes: the server recognises a request by the
// digest of its body.
func (c *Client) AppendRawKeyed(ctx context.Context, key, contentType string, body []byte) ([]custos.Receipt, error) {
	var out struct {
		Receipts []custos.Receipt `json:"receipts"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/events", contentType, body, &out, "Idempotency-Key", key)
	return out.Receipts, err
}

// Page is one page of events.
type Page struct {
	Items      []custos.Event `json:"items"`
	NextCursor string         `json:"next_cursor"`
}

// Events runs a search; q holds the filters (user, patient_id, from, …),
// limit and cursor.
func (c *Client) Events(ctx context.Context, q url.Values) (*Page, error) {
	var p Page
	err := c.do(ctx, http.MethodGet, "/v1/events?"+q.Encode(), "", nil, &p)
	return &p, err
}

// Event fetches one event by ledger index.
func (c *Client) Event(ctx context.Context, index uint64) (*custos.Event, error) {
	var e custos.Event
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/events/%d", index), "", nil, &e)
	return &e, err
}

// Checkpoint returns the latest signed checkpoint note.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/v1/checkpoint", "", nil, &b)
	return b, err
}

// Proof is an RFC 6962 proof as the API answers it.
type Proof struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"tree_size"`
	LeafHash []byte   `json:"leaf_hash"`
	Hashes   [][]byte `json:"hashes"`
}

// InclusionProof fetches the proof of index in the tree of treeSize (0 for
// the latest checkpoint's size).
func (c *Client) InclusionProof(ctx context.Context, index, treeSize uint64) (*Proof, error) {
	path := fmt.Sprintf("/v1/events/%d/proof", index)
	if treeSize > 0 {
		path += fmt.Sprintf("?tree_size=%d", treeSize)
	}
	var p Proof
	err := c.do(ctx, http.MethodGet, path, "", nil, &p)
	return &p, err
}

// ActiveBlock is a block in force: an address range and when it ends.
type ActiveBlock struct {
	CIDR         string    `json:"cidr"`
	BlockedUntil time.Time `json:"blocked_until"`
}

// ActiveBlocks lists the blocks in force (permission blocks:check), for
// programs that refuse blocked addresses themselves.
func (c *Client) ActiveBlocks(ctx context.Context) ([]ActiveBlock, error) {
	var out struct {
		Items []ActiveBlock `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/blocks/active", "", nil, &out)
	return out.Items, err
}

// do sends one request; hdr holds further header names and values, in pairs.
func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any, hdr ...string) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("custos: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("custos: %s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("custos: read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, Title: resp.Status}
		json.Unmarshal(data, e) // a non-problem body keeps the status line
		return e
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("custos: decode answer: %w", err)
	}
	return nil
}
