package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
	"github.com/custos-audit/custos/internal/monitor"
)

// Security events and blocks: what the rules raise and block, what
// applications report, what officers acknowledge, resolve, block and lift.

// enforce refuses every request from a blocked address, before anything
// else reads it.
func (a *API) enforce(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.mon != nil && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			if ip, err := netip.ParseAddr(clientAddr(r)); err == nil {
				if b, blocked := a.mon.Blocked(ip.Unmap().String()); blocked {
					a.problem(w, r, custos.Errorf("block", custos.PermissionDenied,
						"requests from this address are blocked until %s", b.BlockedUntil.UTC().Format(time.RFC3339)))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// monitoring answers 503 when the monitor is off.
func (a *API) monitoring(w http.ResponseWriter, r *http.Request) bool {
	if a.mon == nil {
		a.problem(w, r, custos.Errorf("monitor", custos.Unavailable, "security monitoring is off on this node (--monitor=false)"))
		return false
	}
	return true
}

func (a *API) listSecurityEvents(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	q := r.URL.Query()
	f := monitor.Filter{EventType: custos.SecurityEventType(q.Get("event_type")), Severity: custos.Severity(q.Get("severity")),
		Status: custos.SecurityEventStatus(q.Get("status")), Rule: q.Get("rule")}
	var fields []custos.FieldError
	for k := range q {
		switch k {
		case "event_type", "severity", "status", "rule", "from", "to", "limit", "cursor":
			if len(q[k]) > 1 {
				fields = append(fields, custos.FieldError{Field: k, Message: "is given more than once"})
			}
		default:
			fields = append(fields, custos.FieldError{Field: k, Message: "is not a filter of security events"})
		}
	}
	if f.EventType != "" && !f.EventType.Valid() {
		fields = append(fields, custos.FieldError{Field: "event_type", Message: "is not a security event type"})
	}
	if f.Severity != "" && !f.Severity.Valid() {
		fields = append(fields, custos.FieldError{Field: "severity", Message: "must be LOW, MEDIUM, HIGH or CRITICAL"})
	}
	if f.Status != "" && !f.Status.Valid() {
		fields = append(fields, custos.FieldError{Field: "status", Message: "must be open, acknowledged or resolved"})
	}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(b.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				fields = append(fields, custos.FieldError{Field: b.name, Message: "must be an RFC 3339 time"})
			}
			*b.t = t
		}
	}
	if len(fields) > 0 {
		a.problem(w, r, &custos.Error{Op: "security_events", Kind: custos.Invalid, Detail: "the query is invalid", Fields: fields})
		return
	}
	q.Del("event_type")
	q.Del("severity")
	q.Del("rule")
	q.Del("from")
	q.Del("to")
	q.Del("status")
	r.URL.RawQuery = q.Encode()
	writePage(w, r, a, a.mon.SecurityEvents(f), func(s monitor.SecurityEvent) string { return fmt.Sprintf("%020d", s.Index) })
}

func (a *API) getSecurityEvent(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	se, err := a.mon.SecurityEvent(r.PathValue("id"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, se)
}

type reportRequest struct {
	ID             string                     `json:"id"`
	EventType      custos.SecurityEventType   `json:"event_type"`
	Severity       custos.Severity            `json:"severity"`
	Description    string                     `json:"description"`
	User           string                     `json:"user"`
	IPAddress      string                     `json:"ip_address"`
	AdditionalData json.RawMessage            `json:"additional_data"`
	Rule           string                     `json:"rule"`
	Status         custos.SecurityEventStatus `json:"status"`
}

func (a *API) reportSecurityEvent(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	var req reportRequest
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	se, err := a.mon.Report(r.Context(), authn.Submitter(principalOf(r)), custos.SecurityEvent{ID: req.ID, EventType: req.EventType,
		Severity: req.Severity, Description: req.Description, User: req.User, IPAddress: req.IPAddress,
		AdditionalData: []byte(req.AdditionalData), Rule: req.Rule, Status: req.Status})
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, se)
}

func (a *API) setSecurityEventStatus(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	var req struct {
		Status custos.SecurityEventStatus `json:"status"`
		Note   string                     `json:"note"`
	}
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	se, err := a.mon.SetStatus(r.Context(), authn.Submitter(principalOf(r)), r.PathValue("id"), req.Status, req.Note)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, se)
}

func (a *API) listBlocks(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	active := r.URL.Query().Get("active")
	if active != "" && active != "true" {
		a.problem(w, r, invalidField("active", `must be "true" (blocks in force) or absent`))
		return
	}
	q := r.URL.Query()
	q.Del("active")
	r.URL.RawQuery = q.Encode()
	writePage(w, r, a, a.mon.Blocks(active == "true"), func(b monitor.Block) string { return b.CreatedAt + "\x00" + b.ID })
}

type blockRequest struct {
	IP       string `json:"ip"`
	CIDR     string `json:"cidr"`
	Reason   string `json:"reason"`
	Duration string `json:"duration"`
}

func (a *API) createBlock(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	var req blockRequest
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	target := req.CIDR
	switch {
	case req.IP != "" && req.CIDR != "":
		a.problem(w, r, invalidField("ip", "give ip or cidr, not both"))
		return
	case req.IP != "":
		if _, err := netip.ParseAddr(req.IP); err != nil {
			a.problem(w, r, invalidField("ip", "must be an IPv4 or IPv6 address"))
			return
		}
		target = req.IP
	case req.CIDR == "":
		a.problem(w, r, invalidField("cidr", "ip or cidr is required"))
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d <= 0 {
		a.problem(w, r, invalidField("duration", `must be a positive duration such as "1h" or "30m"`))
		return
	}
	b, err := a.mon.AddBlock(r.Context(), authn.Submitter(principalOf(r)), target, req.Reason, d)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

func (a *API) liftBlock(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	b, err := a.mon.Lift(r.Context(), authn.Submitter(principalOf(r)), r.PathValue("id"), r.URL.Query().Get("note"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *API) checkBlock(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	q := r.URL.Query()
	if len(q) != 1 || len(q["ip"]) != 1 {
		a.problem(w, r, invalidField("ip", "exactly one ip parameter is required"))
		return
	}
	blocked, b, err := a.mon.Check(q.Get("ip"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	if !blocked {
		writeJSON(w, http.StatusOK, map[string]any{"blocked": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"blocked": true, "block": b})
}

// activeBlock is a block in force as the middleware and the proxy see it:
// the range and its end, never the reason or who set it.
type activeBlock struct {
	CIDR         string `json:"cidr"`
	BlockedUntil string `json:"blocked_until"`
}

// activeBlocks lists the blocks in force, for callers that hold only
// blocks:check and refresh a local copy (the middleware, the proxy).
func (a *API) activeBlocks(w http.ResponseWriter, r *http.Request) {
	if !a.monitoring(w, r) {
		return
	}
	if params := slices.Sorted(maps.Keys(r.URL.Query())); len(params) > 0 {
		a.problem(w, r, invalidField(params[0], "is not a parameter of this list"))
		return
	}
	items := make([]activeBlock, 0)
	for _, b := range a.mon.Blocks(true) {
		items = append(items, activeBlock{CIDR: b.CIDR, BlockedUntil: b.BlockedUntil})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// wakeMonitor tells the monitor that records were just committed.
func (a *API) wakeMonitor() {
	if a.mon != nil {
		a.mon.Wake()
	}
}
