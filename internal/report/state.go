package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/leaf"
)

// The state entities reports read (frozen names: internal/authn,
// internal/monitor and internal/ledger own them). The report decodes only
// the fields it shows; never a secret (a key's hash, a password, a TOTP
// secret).
const (
	entityKey           = "api_key"
	entityRole          = "role"
	entityUser          = "user"
	entityGrant         = "grant"
	entityApproval      = "approval"
	entityBlock         = "block"
	entityLog           = "log"
	entitySecurityEvent = "security_event"
)

// configEntities are the state entities whose changes are system changes.
var configEntities = []string{entityKey, entityRole, entityUser, entityGrant, entityApproval, entityBlock, entityLog}

type userDoc struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Status       string   `json:"status"`
	StatusReason string   `json:"status_reason"`
	SuspendedAt  string   `json:"suspended_at"`
	TerminatedAt string   `json:"terminated_at"`
}

type roleDoc struct {
	Permissions []string `json:"permissions"`
	ParentRole  string   `json:"parent_role"`
}

type keyDoc struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	RevokedAt string   `json:"revoked_at"`
	Roles     []string `json:"roles"`
}

type grantDoc struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	Reason     string `json:"reason"`
	PatientID  string `json:"patient_id"`
	OpenedAt   string `json:"opened_at"`
	OpenedBy   string `json:"opened_by"`
	ExpiresAt  string `json:"expires_at"`
	Review     string `json:"review"`
	ReviewedBy string `json:"reviewed_by"`
	ReviewedAt string `json:"reviewed_at"`
	ReviewNote string `json:"review_note"`
}

type blockDoc struct {
	ID           string `json:"id"`
	CIDR         string `json:"cidr"`
	Reason       string `json:"reason"`
	CreatedAt    string `json:"created_at"`
	BlockedUntil string `json:"blocked_until"`
	CreatedBy    string `json:"created_by"`
	LiftedAt     string `json:"lifted_at"`
}

type statusChange struct {
	Status string `json:"status"`
	Note   string `json:"note"`
	By     string `json:"by"`
	At     string `json:"at"`
}

type securityDoc struct {
	ID          string         `json:"id"`
	EventType   string         `json:"event_type"`
	Severity    string         `json:"severity"`
	Description string         `json:"description"`
	User        string         `json:"user"`
	IPAddress   string         `json:"ip_address"`
	Rule        string         `json:"rule"`
	Status      string         `json:"status"`
	Count       int64          `json:"count"`
	History     []statusChange `json:"history"`
	// AdditionalData of the unusual PHI access rule: the day judged and
	// the threshold it exceeded.
	AdditionalData struct {
		Threshold float64 `json:"threshold"`
		Day       string  `json:"day"`
		Count     int64   `json:"count"`
	} `json:"additional_data"`
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

func timePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := parseTime(s)
	return &t
}

func in(t, from, to time.Time) bool { return !t.Before(from) && t.Before(to) }

// changes fills the system changes, the blocks of log-in monitoring, and
// the workforce section from the state records of configuration entities:
// their whole history below the checkpoint (administrative records,
// bounded by what administrators do, not by the events).
func (b *Builder) changes(ctx context.Context, r *HIPAA) error {
	recs, err := b.src.StateRecordsOf(ctx, configEntities, time.Time{}, r.Period.To, r.Checkpoint.Size)
	if err != nil {
		return err
	}
	from, to := r.Period.From, r.Period.To
	seen := map[leaf.StateKey]bool{}
	users := map[string]*userTimeline{}
	entities := tally{}
	sc := &r.SystemChanges
	for i := range recs {
		rec := &recs[i]
		first := !seen[rec.Key()]
		seen[rec.Key()] = true
		if rec.Entity == entityUser && rec.Op.Puts() {
			var u userDoc
			json.Unmarshal(rec.Doc, &u)
			b.userRecord(r, users, rec, u)
		}
		if !in(rec.Timestamp, from, to) {
			continue
		}
		if rec.Entity == entityBlock && rec.Op.Puts() {
			b.blockRecord(r, rec)
		}
		op := "update"
		switch {
		case rec.Op == leaf.OpDelete:
			op = "delete"
		case rec.Op == leaf.OpCreate || first:
			op = "create"
		}
		sc.Total++
		entities.add(rec.Entity, 1)
		if len(sc.Changes) == b.cfg.MaxListed {
			sc.Truncated = true
			continue
		}
		sc.Changes = append(sc.Changes, Change{Index: rec.Index, Timestamp: rec.Timestamp.UTC(), Entity: rec.Entity,
			ID: rec.ID, Op: op, By: rec.SubmittedBy, Summary: summary(rec)})
	}
	sc.ByEntity = entities.counts()
	if err := b.afterTermination(ctx, r, users); err != nil {
		return err
	}
	byIndex := func(a, b InactiveLogin) int { return cmp.Compare(a.Index, b.Index) }
	slices.SortFunc(r.Workforce.ActivityAfterTermination, byIndex)
	slices.SortFunc(r.LoginMonitoring.InactiveLogins, byIndex)
	return nil
}

// summary says in a few words what a configuration record set, never a
// secret.
func summary(rec *leaf.StateRecord) string {
	if !rec.Op.Puts() {
		return "removed"
	}
	switch rec.Entity {
	case entityUser:
		var u userDoc
		json.Unmarshal(rec.Doc, &u)
		s := fmt.Sprintf("status %s; roles %s", u.Status, strings.Join(u.Roles, ", "))
		if u.StatusReason != "" {
			s += "; reason: " + u.StatusReason
		}
		return s
	case entityRole:
		var d roleDoc
		json.Unmarshal(rec.Doc, &d)
		s := "permissions " + strings.Join(d.Permissions, ", ")
		if d.ParentRole != "" {
			s += "; parent " + d.ParentRole
		}
		return s
	case entityKey:
		var d keyDoc
		json.Unmarshal(rec.Doc, &d)
		if d.RevokedAt != "" {
			return fmt.Sprintf("key %q revoked", d.Name)
		}
		return fmt.Sprintf("key %q, scopes %s", d.Name, strings.Join(append(d.Scopes, d.Roles...), ", "))
	case entityGrant:
		var g grantDoc
		json.Unmarshal(rec.Doc, &g)
		return fmt.Sprintf("emergency grant for %s, review %s", g.UserID, g.Review)
	case entityBlock:
		var d blockDoc
		json.Unmarshal(rec.Doc, &d)
		if d.LiftedAt != "" {
			return "block of " + d.CIDR + " lifted"
		}
		return "block of " + d.CIDR + " until " + d.BlockedUntil
	}
	return ""
}

// blockRecord notes a block placed or lifted in the period.
func (b *Builder) blockRecord(r *HIPAA, rec *leaf.StateRecord) {
	var d blockDoc
	json.Unmarshal(rec.Doc, &d)
	lm := &r.LoginMonitoring
	if d.LiftedAt != "" {
		lm.Lifted++
		for i := range lm.Blocks {
			if lm.Blocks[i].ID == d.ID {
				lm.Blocks[i].Lifted = true
			}
		}
		return
	}
	if len(lm.Blocks) < b.cfg.MaxListed {
		lm.Blocks = append(lm.Blocks, Block{ID: d.ID, CIDR: d.CIDR, Reason: d.Reason, CreatedAt: parseTime(d.CreatedAt),
			CreatedBy: d.CreatedBy, BlockedUntil: parseTime(d.BlockedUntil)})
	}
}
