package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// top is the schema of the rules file.
func (d *decoder) top(c *Config) map[string]setter {
	return map[string]setter{
		"version": func(n *yaml.Node, path string) error {
			if s, err := scalar(n, path, "1"); err != nil || s != "1" {
				return errAt(n, path, "must be 1")
			}
			return nil
		},
		"late_allowance": duration(&c.LateAllowance, true, maxAllowance),
		"ipv6_prefix":    integer(&c.IPv6Prefix, 1, 128),
		"max_block_width": d.section(map[string]setter{
			"ipv4": integer(&c.BlockLimits.MinBitsIPv4, 1, 32),
			"ipv6": integer(&c.BlockLimits.MinBitsIPv6, 1, 128),
		}),
		"allow_list": prefixes(&c.AllowList),
		"repeat_offenders": d.section(map[string]setter{
			"within":       duration(&c.Repeat.Within, true, 366*24*time.Hour),
			"factor":       integer(&c.Repeat.Factor, 1, 100),
			"max_duration": duration(&c.Repeat.Max, false, 366*24*time.Hour),
		}),
		"timezone": func(n *yaml.Node, path string) error {
			s, err := scalar(n, path, "an IANA time zone name")
			if err != nil {
				return err
			}
			loc, err := time.LoadLocation(s)
			if err != nil || s == "" || s == "Local" {
				return errAt(n, path, "%q is not a known IANA time zone such as UTC or Europe/Paris", s)
			}
			c.Location = loc
			return nil
		},
		"rules": d.section(d.rules(c)),
	}
}

func (d *decoder) section(fields map[string]setter) setter {
	return func(n *yaml.Node, path string) error { return d.mapping(n, path, fields) }
}

// rules is the schema of the rules section: one entry per default rule.
func (d *decoder) rules(c *Config) map[string]setter {
	return map[string]setter{
		RuleAuthFailure: d.section(map[string]setter{
			"enabled": boolean(&c.AuthFailure.Enabled), "severity": severity(&c.AuthFailure.Severity)}),
		RuleBruteForce:          d.section(thresholdFields(&c.BruteForce, true)),
		RuleSlowBruteForce:      d.section(thresholdFields(&c.SlowBruteForce, true)),
		RulePasswordSpraying:    d.section(thresholdFields(&c.PasswordSpraying, true)),
		RuleAccountGuessing:     d.section(thresholdFields(&c.AccountGuessing, false)),
		RuleFailuresThenSuccess: d.section(thresholdFields(&c.FailuresThenSuccess, false)),
		RuleUnauthorizedAccess: d.section(map[string]setter{
			"enabled": boolean(&c.UnauthorizedAccess.Enabled),
			"window":  duration(&c.UnauthorizedAccess.Window, false, maxWindow),
			"levels":  levels(&c.UnauthorizedAccess.Levels),
		}),
		RuleSessionHijack: d.section(map[string]setter{
			"enabled":          boolean(&c.SessionHijack.Enabled),
			"lifetime":         duration(&c.SessionHijack.Lifetime, false, maxWindow),
			"severity":         severity(&c.SessionHijack.Severity),
			"check_addresses":  boolean(&c.SessionHijack.Addresses),
			"check_user_agent": boolean(&c.SessionHijack.UserAgents),
		}),
		RuleDataExport: d.section(map[string]setter{
			"enabled":            boolean(&c.DataExport.Enabled),
			"severity":           severity(&c.DataExport.Severity),
			"bulk_severity":      severity(&c.DataExport.BulkSeverity),
			"window":             duration(&c.DataExport.Window, false, maxWindow),
			"max_records":        integer(&c.DataExport.MaxRecords, 1, 1<<40),
			"record_count_field": recordField(&c.DataExport.RecordCountField),
			"working_hours": d.section(map[string]setter{
				"days":  weekdays(&c.DataExport.WorkingHours.Days),
				"start": clock(&c.DataExport.WorkingHours.Start),
				"end":   clock(&c.DataExport.WorkingHours.End),
			}),
		}),
		RuleConfigurationChange: d.section(map[string]setter{
			"enabled":        boolean(&c.ConfigurationChange.Enabled),
			"severity":       severity(&c.ConfigurationChange.Severity),
			"resource_types": names(&c.ConfigurationChange.ResourceTypes),
		}),
		RuleUnusualPHIAccess: d.section(map[string]setter{
			"enabled":          boolean(&c.UnusualPHIAccess.Enabled),
			"severity":         severity(&c.UnusualPHIAccess.Severity),
			"history_days":     integer(&c.UnusualPHIAccess.HistoryDays, 1, maxHistoryDays),
			"min_history_days": integer(&c.UnusualPHIAccess.MinHistoryDays, 1, maxHistoryDays),
			"min_peer_samples": integer(&c.UnusualPHIAccess.MinPeerSamples, 1, MaxThreshold),
			"z_score":          float(&c.UnusualPHIAccess.ZScore, 0.5, 100),
			"mad_floor":        float(&c.UnusualPHIAccess.MADFloor, 0.1, 1e6),
			"min_patients":     integer(&c.UnusualPHIAccess.MinPatients, 1, 1<<30),
		}),
	}
}

// thresholdFields is the schema of a threshold rule; block only for the
// rules keyed by address.
func thresholdFields(t *Threshold, block bool) map[string]setter {
	f := map[string]setter{
		"enabled":   boolean(&t.Enabled),
		"window":    duration(&t.Window, false, maxWindow),
		"threshold": integer(&t.Threshold, 1, MaxThreshold),
		"severity":  severity(&t.Severity),
	}
	if block {
		f["block"] = duration(&t.Block, true, maxWindow)
	}
	return f
}

func levels(dst *[]Level) setter {
	return func(n *yaml.Node, path string) error {
		var out []Level
		err := sequence(n, path, func(item *yaml.Node, path string) error {
			var l Level
			d := decoder{lines: map[string]int{}}
			if err := d.mapping(item, path, map[string]setter{
				"threshold": integer(&l.Threshold, 1, MaxThreshold),
				"severity":  severity(&l.Severity),
			}); err != nil {
				return err
			}
			if l.Threshold == 0 || l.Severity == "" {
				return errAt(item, path, "a level needs a threshold and a severity")
			}
			if k := len(out); k > 0 && (l.Threshold <= out[k-1].Threshold || l.Severity.Rank() <= out[k-1].Severity.Rank()) {
				return errAt(item, path, "levels must rise in threshold and severity")
			}
			out = append(out, l)
			return nil
		})
		if err == nil && len(out) == 0 {
			return errAt(n, path, "needs at least one level")
		}
		*dst = out
		return err
	}
}

func recordField(dst *string) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, "a field name")
		if err != nil {
			return err
		}
		if len(s) > 64 {
			return errAt(n, path, "must be at most 64 characters")
		}
		*dst = s
		return nil
	}
}

var weekdayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func weekdays(dst *[]time.Weekday) setter {
	return func(n *yaml.Node, path string) error {
		out := []time.Weekday{}
		seen := map[time.Weekday]bool{}
		err := sequence(n, path, func(item *yaml.Node, path string) error {
			s, err := scalar(item, path, "a day such as Mon")
			if err != nil {
				return err
			}
			wd, ok := weekdayNames[strings.ToLower(s)]
			if !ok {
				return errAt(item, path, "%q is not a day: Mon, Tue, Wed, Thu, Fri, Sat or Sun", s)
			}
			if seen[wd] {
				return errAt(item, path, "duplicate day %q", s)
			}
			seen[wd] = true
			out = append(out, wd)
			return nil
		})
		*dst = out
		return err
	}
}

// clock reads a time of day, "HH:MM" from 00:00 to 24:00.
func clock(dst *time.Duration) setter {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path, `a time of day such as "07:00"`)
		if err != nil {
			return err
		}
		h, m, ok := strings.Cut(s, ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
			return errAt(n, path, `%q is not a time of day from "00:00" to "24:00"`, s)
		}
		*dst = time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
		return nil
	}
}

// check refuses combinations of settings that are each valid alone.
func (d *decoder) check(c *Config) error {
	fail := func(path, format string, args ...any) error {
		return &ConfigError{Line: d.lines[path], Field: path, Reason: fmt.Sprintf(format, args...)}
	}
	if c.IPv6Prefix < c.BlockLimits.MinBitsIPv6 {
		return fail("ipv6_prefix", "an IPv6 address key of /%d is wider than the widest block allowed (max_block_width.ipv6: /%d)",
			c.IPv6Prefix, c.BlockLimits.MinBitsIPv6)
	}
	if c.UnusualPHIAccess.MinHistoryDays > c.UnusualPHIAccess.HistoryDays {
		return fail("rules.unusual_phi_access.min_history_days", "must not exceed history_days (%d)", c.UnusualPHIAccess.HistoryDays)
	}
	if wh := c.DataExport.WorkingHours; wh.End <= wh.Start {
		return fail("rules.data_export.working_hours.end", "must be after start")
	}
	for _, p := range c.AllowList {
		if p.Bits() == 0 {
			return fail("allow_list", "%s allows every address: no rule could ever block", p)
		}
	}
	return nil
}
