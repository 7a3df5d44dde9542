package report

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// emergency lists the emergency grants opened in the period, as of the
// checkpoint, and the events flagged break-the-glass.
func (b *Builder) emergency(ctx context.Context, r *HIPAA, w store.Window, inPeriod bool) error {
	ea := &r.EmergencyAccess
	recs, err := b.src.StateRecordsOf(ctx, []string{entityGrant}, r.Period.From, time.Time{}, r.Checkpoint.Size)
	if err != nil {
		return err
	}
	latest := map[string]grantDoc{}
	var ids []string
	for _, rec := range recs {
		if !rec.Op.Puts() {
			continue
		}
		var g grantDoc
		json.Unmarshal(rec.Doc, &g)
		if _, ok := latest[g.ID]; !ok {
			ids = append(ids, g.ID)
		}
		latest[g.ID] = g
	}
	for _, id := range ids {
		g := latest[id]
		opened := parseTime(g.OpenedAt)
		if !in(opened, r.Period.From, r.Period.To) {
			continue
		}
		v := Grant{ID: g.ID, UserID: g.UserID, PatientID: g.PatientID, Reason: g.Reason, OpenedAt: opened, OpenedBy: g.OpenedBy,
			ExpiresAt: parseTime(g.ExpiresAt), Review: g.Review, ReviewedBy: g.ReviewedBy, ReviewedAt: timePtr(g.ReviewedAt), ReviewNote: g.ReviewNote}
		err := b.searchUser(ctx, g.UserID, v.OpenedAt, v.ExpiresAt, r.Checkpoint.Size, func(e *custos.Event) bool {
			if e.BreakGlass {
				v.Events++
			}
			return true
		})
		if err != nil {
			return err
		}
		if g.Review == "closed" {
			ea.ReviewsClosed++
		} else {
			ea.ReviewsOpen++
		}
		ea.Grants = append(ea.Grants, v)
	}
	if !inPeriod {
		return nil
	}
	var uses []EmergencyUse
	err = b.pageWindow(ctx, w, store.EventFilter{BreakGlass: true}, func(e *custos.Event) bool {
		if len(uses) == b.cfg.MaxListed {
			ea.Truncated = true
			return false
		}
		uses = append(uses, EmergencyUse{Index: e.Index, Timestamp: e.Timestamp.UTC(), UserID: e.User.ID, Action: string(e.Action),
			ResourceType: e.ResourceType, ResourceID: e.ResourceID, PatientID: e.PatientID, Reason: e.BreakGlassReason})
		return true
	})
	slices.Reverse(uses) // newest first
	ea.Uses = nonNil(uses)
	return err
}
