package report

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// unusual, when Config.RecomputeBaselines is set, finds the user-days of the period on which a user touched more
// distinct patients than their own baseline allows, judged as the unusual
// PHI access rule judges the current day (rules.Baseline.Threshold over
// the user's previous HistoryDays active days, once they have
// MinHistoryDays of them). The rule's own security events (with the peer
// baseline for users with a short history) were added by securityEvents.
// The counts come from the store's per-user, per-day aggregate: memory
// grows with user-days, never with events.
func (b *Builder) unusual(ctx context.Context, r *HIPAA) error {
	bl := b.cfg.Baseline
	if !b.cfg.RecomputeBaselines || !bl.Enabled || bl.HistoryDays <= 0 {
		return nil
	}
	from := r.Period.From.UTC().Truncate(24*time.Hour).AddDate(0, 0, -bl.HistoryDays)
	days, err := b.src.PatientDays(ctx, from, r.Period.To)
	if err != nil {
		return err
	}
	type day struct {
		at time.Time
		n  int
	}
	byUser := map[string][]day{}
	for _, d := range days {
		byUser[d.UserID] = append(byUser[d.UserID], day{d.Day, d.Patients})
	}
	for user, ds := range byUser {
		slices.SortFunc(ds, func(a, b day) int { return a.at.Compare(b.at) })
		for i, d := range ds {
			if !in(d.at, r.Period.From.Truncate(24*time.Hour), r.Period.To) {
				continue
			}
			var hist []float64
			for _, h := range ds[:i] {
				if !h.at.Before(d.at.AddDate(0, 0, -bl.HistoryDays)) {
					hist = append(hist, float64(h.n))
				}
			}
			if len(hist) < bl.MinHistoryDays {
				continue
			}
			th := bl.Threshold(hist)
			if float64(d.n) > th {
				r.DataAccess.UnusualPatterns = append(r.DataAccess.UnusualPatterns, UnusualPattern{UserID: user,
					Day: d.at.Format(time.DateOnly), Patients: int64(d.n), Baseline: medianOf(hist), Threshold: th, Source: "baseline"})
			}
		}
	}
	sortUnusual(r.DataAccess.UnusualPatterns)
	return nil
}

func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// sortUnusual orders unusual patterns by day, user, and source.
func sortUnusual(ps []UnusualPattern) {
	slices.SortStableFunc(ps, func(a, b UnusualPattern) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Source, b.Source))
	})
}
