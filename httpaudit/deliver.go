package httpaudit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
)

// maxSegmentBytes seals a segment before a batch could outgrow what
// Custos takes in one request (16 MiB by default).
const maxSegmentBytes = 4 << 20

// writeLoop moves events from the request path to the spool: it drains
// what is queued, validates, encodes and appends it in one write, and
// seals the segment after BatchSize events, maxSegmentBytes, or
// FlushInterval after its first event.
func (a *Auditor) writeLoop() {
	defer a.wg.Done()
	var timer *time.Timer
	var timerC <-chan time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	var buf []item
	drain := func() {
		for len(buf) < 4096 {
			select {
			case it := <-a.in:
				buf = append(buf, it)
			default:
				return
			}
		}
	}
	for {
		select {
		case it := <-a.in:
			buf = append(buf[:0], it)
			drain()
			a.write(buf)
			if a.q.openEvents() >= a.cfg.BatchSize || a.q.openBytes() >= maxSegmentBytes {
				stopTimer()
				a.seal()
			} else if timer == nil && a.q.openEvents() > 0 {
				timer = time.NewTimer(a.cfg.FlushInterval)
				timerC = timer.C
			}
		case <-timerC:
			timer, timerC = nil, nil
			a.seal()
		case done := <-a.flushReq:
			for {
				buf = buf[:0]
				drain()
				if len(buf) == 0 {
					break
				}
				a.write(buf)
			}
			stopTimer()
			a.seal()
			close(done)
		case <-a.quit:
			stopTimer()
			return
		}
	}
}

// write validates and spools events; what is invalid or does not fit is
// dropped and counted.
func (a *Auditor) write(items []item) {
	recs := make([][]byte, 0, len(items))
	size := a.q.bytes()
	if a.q.openEvents() == 0 {
		size += int64(segHeaderLen) // a new segment starts with its header
	}
	for i := range items {
		a.resolve(&items[i])
		ev := &items[i].ev
		clip(ev)
		e := ev.Event()
		if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
			a.dropped.Add(1)
			a.log.Error("httpaudit: dropping an event Custos would refuse", "err", err)
			continue
		}
		rec, err := json.Marshal(ev)
		if err != nil {
			a.dropped.Add(1)
			continue
		}
		if size+int64(len(rec)+recHeader) > a.cfg.SpoolMaxBytes {
			a.dropped.Add(1)
			a.setFull()
			continue
		}
		size += int64(len(rec) + recHeader)
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return
	}
	if err := a.q.append(recs); err != nil {
		a.dropped.Add(uint64(len(recs)))
		a.log.Error("httpaudit: the spool refused events", "events", len(recs), "err", err)
		return
	}
	a.spooled.Add(uint64(len(recs)))
}

func (a *Auditor) seal() {
	if err := a.q.seal(); err != nil {
		a.log.Error("httpaudit: sealing a batch", "err", err)
	}
	a.signal()
}

// setFull marks the spool full and, once per episode, tells the
// application.
func (a *Auditor) setFull() {
	if !a.full.CompareAndSwap(false, true) {
		return
	}
	st := a.spoolStats()
	a.log.Warn("httpaudit: the spool is full", "bytes", st.Bytes, "max_bytes", st.MaxBytes, "policy", a.cfg.WhenFull)
	if a.cfg.OnSpoolFull != nil {
		go a.cfg.OnSpoolFull(st)
	}
}

// clearFull ends the episode once the spool drained below 90% of its bound.
func (a *Auditor) clearFull() {
	if a.full.Load() && a.q.bytes() <= a.cfg.SpoolMaxBytes/10*9 {
		a.full.Store(false)
	}
}

// clip brings text fields within what Custos takes: valid UTF-8 without
// control characters, cut to each field's length, at most 32 non-empty
// roles. Whatever a client sends (a path with %00, a long user agent) or
// an application names, the event stays valid and is recorded: a batch is
// never refused for one bad field, and no request escapes the trail by
// carrying one.
func clip(ev *custos.EventInput) {
	for _, f := range []struct {
		s   *string
		max int
	}{{&ev.ResourceType, custos.MaxLength("resource_type")}, {&ev.ResourceID, custos.MaxLength("resource_id")},
		{&ev.PatientID, custos.MaxLength("patient_id")}, {&ev.UserAgent, custos.MaxLength("user_agent")},
		{&ev.RequestPath, custos.MaxLength("request_path")}, {&ev.Source, custos.MaxLength("source")},
		{&ev.RequestID, 128}, {&ev.SessionID, 128}, {&ev.PurposeOfUse, 100}, {&ev.BreakGlassReason, 500},
		{&ev.RequestMethod, 10}} {
		*f.s = custos.Clip(noControl(*f.s), f.max)
	}
	if ev.ResourceType == "" {
		ev.ResourceType = "/"
	}
	if ev.User == nil || noControl(ev.User.ID) == "" {
		ev.User = &custos.User{ID: Unauthenticated}
	}
	u := *ev.User
	u.ID = custos.Clip(noControl(u.ID), custos.MaxLength("user.id"))
	u.Name = custos.Clip(noControl(u.Name), 255)
	roles := make([]string, 0, len(u.Roles))
	for _, r := range u.Roles {
		if r = custos.Clip(noControl(r), 64); r != "" && len(roles) < 32 {
			roles = append(roles, r)
		}
	}
	u.Roles = roles
	ev.User = &u
	if ev.BreakGlass && strings.TrimSpace(ev.BreakGlassReason) == "" {
		ev.BreakGlassReason = "(no reason given)"
	}
}

// noControl replaces C0 control characters but tab, and DEL, with U+FFFD.
func noControl(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }

// deliverLoop sends sealed batches in order, each with its key, and
// removes one only after Custos acknowledged it. While Custos is
// unreachable it waits RetryMin, doubling up to RetryMax, between tries.
func (a *Auditor) deliverLoop() {
	defer a.wg.Done()
	wait := a.cfg.RetryMin
	for {
		b, err := a.q.next()
		if err == nil && b == nil {
			select {
			case <-a.wake:
				continue
			case <-a.quit:
				return
			}
		}
		if err == nil {
			err = a.send(b)
		}
		switch {
		case err == nil:
			if rerr := a.q.remove(b); rerr != nil {
				a.log.Error("httpaudit: removing a delivered batch", "err", rerr)
			}
			a.delivered.Add(uint64(len(b.recs)))
			a.lastErr.Store(nil)
			wait = a.cfg.RetryMin
			a.clearFull()
			a.notifyChanged()
			continue
		case permanent(err):
			a.log.Error("httpaudit: Custos refused a batch as invalid; setting it aside in the spool", "events", len(b.recs), "err", err)
			if rerr := a.q.setAside(b); rerr != nil {
				a.log.Error("httpaudit: setting a batch aside", "err", rerr)
			}
			a.rejected.Add(uint64(len(b.recs)))
			a.clearFull()
			a.notifyChanged()
			continue
		}
		msg := err.Error()
		a.lastErr.Store(&msg)
		a.log.Warn("httpaudit: delivery failed; retrying", "pending", a.q.pending(), "retry_in", wait, "err", err)
		select {
		case <-a.after(wait):
		case <-a.quit:
			return
		}
		wait = min(2*wait, a.cfg.RetryMax)
	}
}

// send delivers one batch under its key. The body is the batch's records
// as they were spooled, byte for byte, so a retry (after a restart too)
// is the same request Custos may already have committed.
func (a *Auditor) send(b *batch) error {
	body := make([]byte, 0, b.size+2)
	body = append(body, '[')
	for i, rec := range b.recs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, rec...)
	}
	body = append(body, ']')
	ctx, cancel := context.WithTimeout(a.run, 30*time.Second)
	defer cancel()
	receipts, err := a.cfg.Client.AppendRawKeyed(ctx, b.key, "application/json", body)
	if err == nil && len(receipts) != len(b.recs) {
		err = fmt.Errorf("httpaudit: %d receipts for %d events", len(receipts), len(b.recs))
	}
	return err
}

// deliverNow sends events at once, outside the spool (fail-closed routes):
// two tries of the same body under one key, within ctx.
func (a *Auditor) deliverNow(ctx context.Context, evs []custos.EventInput) error {
	for i := range evs {
		clip(&evs[i])
	}
	body, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("httpaudit: %w", err)
	}
	key := newKey()
	for range 2 {
		var receipts []custos.Receipt
		receipts, err = a.cfg.Client.AppendRawKeyed(ctx, key, "application/json", body)
		if err == nil && len(receipts) != len(evs) {
			err = fmt.Errorf("httpaudit: %d receipts for %d events", len(receipts), len(evs))
		}
		if err == nil {
			a.delivered.Add(uint64(len(evs)))
			return nil
		}
		if permanent(err) || ctx.Err() != nil {
			break
		}
	}
	return err
}

// permanent reports an error that retrying the same batch cannot cure: the
// batch itself is invalid.
func permanent(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return true
		}
	}
	return false
}
