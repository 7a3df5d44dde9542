package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The webhook's headers. They are part of the contract with receivers:
// never rename one.
const (
	HeaderSignature  = "Custos-Signature"   // "sha256=" + hex HMAC-SHA256 of the signed content
	HeaderTimestamp  = "Custos-Timestamp"   // Unix seconds; part of the signed content
	HeaderDeliveryID = "Custos-Delivery-Id" // Alert.DeliveryID
)

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// Name names the sink (its progress is stored under it); "webhook"
	// when empty.
	Name string
	// URL receives the POSTs: http or https.
	URL string
	// Secret is the HMAC key shared with the receiver; at least 16 bytes.
	Secret []byte
	// Timeout bounds one request, response included; 10 s when zero.
	Timeout time.Duration
	// Client sends the requests; a client that follows no redirects when
	// nil. A client given here should not follow redirects either (a
	// POST redirected becomes a GET).
	Client *http.Client
	// Now reads the clock for the timestamp header; time.Now when nil.
	Now func() time.Time
}

// Webhook is a Sink that POSTs each alert as one JSON object (a Payload)
// to a URL, signed with HMAC-SHA256. One alert per request, so that each
// answer speaks for exactly one alert: 2xx delivers it; 408, 429, any 5xx,
// any other status and any network error or timeout are transient (the
// outbox retries, honouring Retry-After); any other 4xx refuses that alert
// for good (a *PermanentError: the outbox counts it and moves on).
type Webhook struct {
	name    string
	url     string
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

var _ Sink = (*Webhook)(nil)

// Payload is the JSON body of one webhook request. Its fields are part of
// the contract with receivers: append-only.
type Payload struct {
	DeliveryID string `json:"delivery_id"`
	Alert
}

// NewWebhook checks cfg and returns the sink.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alert.webhook: URL %q must be an absolute http or https URL", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("alert.webhook: the secret must be at least 16 bytes")
	}
	w := &Webhook{name: cfg.Name, url: cfg.URL, secret: bytes.Clone(cfg.Secret),
		timeout: cfg.Timeout, client: cfg.Client, now: cfg.Now}
	if w.name == "" {
		w.name = "webhook"
	}
	if w.timeout <= 0 {
		w.timeout = 10 * time.Second
	}
	if w.client == nil {
		w.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if w.now == nil {
		w.now = time.Now
	}
	return w, nil
}

// Name implements Sink.
func (w *Webhook) Name() string { return w.name }

// Deliver implements Sink: one request per alert, in order, stopping at
// the first that is not delivered.
func (w *Webhook) Deliver(ctx context.Context, alerts []Alert) (int, error) {
	for i, a := range alerts {
		if err := w.post(ctx, a); err != nil {
			return i, err
		}
	}
	return len(alerts), nil
}

func (w *Webhook) post(ctx context.Context, a Alert) error {
	id := a.DeliveryID()
	body, err := json.Marshal(Payload{DeliveryID: id, Alert: a})
	if err != nil {
		return &PermanentError{DeliveryID: id, Err: fmt.Errorf("encode: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert.webhook: %w", err)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "custos-alert/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	req.Header.Set(HeaderDeliveryID, id)
	// Idempotency-Key also lets net/http resend the POST on a pooled
	// connection the receiver had closed, instead of failing it.
	req.Header.Set("Idempotency-Key", id)
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("alert.webhook: deliver %s: %w", id, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	return statusError(id, resp, w.now())
}

// statusError maps a response to nil (delivered), a *PermanentError, or a
// transient error, possibly carrying the receiver's Retry-After.
func statusError(id string, resp *http.Response, now time.Time) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return &PermanentError{DeliveryID: id, Err: fmt.Errorf("the receiver answered %s", resp.Status)}
	}
	err := &statusErr{id: id, status: resp.Status}
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		err.after = time.Duration(s) * time.Second
	} else if t, perr := http.ParseTime(resp.Header.Get("Retry-After")); perr == nil {
		if d := t.Sub(now); d > 0 {
			err.after = d
		}
	}
	return err
}

// statusErr is a transient refusal.
type statusErr struct {
	id, status string
	after      time.Duration
}

func (e *statusErr) Error() string {
	return fmt.Sprintf("alert.webhook: deliver %s: the receiver answered %s", e.id, e.status)
}

func (e *statusErr) RetryAfter() time.Duration { return e.after }

// Sign returns the Custos-Signature header value for a request body sent
// with the Custos-Timestamp ts: "sha256=" and the hex HMAC-SHA256, under
// secret, of ts, a full stop and the body. This must never change: every
// receiver computes it.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("alert: the signature does not match")
	ErrStale        = errors.New("alert: the timestamp is outside the tolerance")
)

// Verify checks a webhook request as a receiver does: the signature over
// the timestamp and the body, in constant time, then the timestamp within
// tolerance of now. A receiver that also remembers the delivery ids it has
// accepted for at least the tolerance refuses every replay.
func Verify(secret []byte, ts, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrStale
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
