package store

import (
	"database/sql/driver"
	"fmt"
	"strconv"

	"github.com/custos-audit/custos"
)

// EventFromValues decodes one row of EventColumns as a database/sql driver
// returns it (int64, float64, bool, string, []byte or nil per column), into
// the same event ScanEvent gives for that row. It is ScanEvent without
// database/sql's conversions by reflection, for scans that read every row
// (the audit): a value of another type than its column's is converted as
// Scan converts it for ScanEvent's destinations, and a value Scan refuses
// (NULL in a NOT NULL column, text that is no number in an integer column)
// is refused as ErrCorruptRow. A blob value is kept, not copied: the driver must return a
// fresh one for each row.
func EventFromValues(v []driver.Value) (custos.Event, error) {
	if len(v) != EventColumnCount {
		return custos.Event{}, fmt.Errorf("store: %d values for %d event columns", len(v), EventColumnCount)
	}
	var r eventRow
	e := &r.e
	var c valueConv
	r.idx = c.int64(v[0], "idx")
	r.ts = c.int64(v[1], "ts")
	r.occurred = c.nullInt64(v[2], "occurred_at")
	e.User.ID = c.string(v[3], "user_id")
	e.User.Name = c.string(v[4], "user_name")
	r.roles = c.string(v[5], "user_roles")
	r.action = c.string(v[6], "action")
	e.ResourceType = c.string(v[7], "resource_type")
	e.ResourceID = c.string(v[8], "resource_id")
	r.patient = c.nullString(v[9], "patient_id")
	r.ip = c.nullString(v[10], "ip_address")
	e.UserAgent = c.string(v[11], "user_agent")
	e.RequestMethod = c.string(v[12], "request_method")
	e.RequestPath = c.string(v[13], "request_path")
	r.changes = c.nullString(v[14], "changes")
	r.outcome = c.string(v[15], "outcome")
	r.statusCode = c.int64(v[16], "status_code")
	e.Source = c.string(v[17], "source")
	e.RequestID = c.string(v[18], "request_id")
	e.SessionID = c.string(v[19], "session_id")
	e.PurposeOfUse = c.string(v[20], "purpose_of_use")
	e.BreakGlass = c.bool(v[21], "break_glass")
	e.BreakGlassReason = c.string(v[22], "break_glass_reason")
	r.version = c.int64(v[23], "leaf_version")
	r.kind = c.int64(v[24], "leaf_kind")
	e.SubmittedBy = c.string(v[25], "submitted_by")
	r.ext = c.bytes(v[26], "ext")
	if c.err != nil {
		return custos.Event{}, fmt.Errorf("%w: event %d: %v", ErrCorruptRow, r.idx, c.err)
	}
	return r.event()
}

// valueConv converts driver values as database/sql's convertAssign does for
// the destination types of the row scanners, keeping the first error.
type valueConv struct{ err error }

func (c *valueConv) fail(col string, v driver.Value, want string) {
	if c.err == nil {
		if v == nil {
			c.err = fmt.Errorf("store: converting NULL to %s is unsupported (column %s)", want, col)
		} else {
			c.err = fmt.Errorf("store: converting %T value %v to %s (column %s)", v, v, want, col)
		}
	}
}

// text is asString of database/sql: the text Scan gives for a value.
func text(v driver.Value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func (c *valueConv) string(v driver.Value, col string) string {
	if s, ok := v.(string); ok {
		return s
	}
	s, ok := text(v)
	if !ok {
		c.fail(col, v, "string")
	}
	return s
}

func (c *valueConv) nullString(v driver.Value, col string) *string {
	if v == nil {
		return nil
	}
	s := c.string(v, col)
	return &s
}

func (c *valueConv) int64(v driver.Value, col string) int64 {
	if i, ok := v.(int64); ok {
		return i
	}
	s, ok := text(v)
	if !ok {
		c.fail(col, v, "int64")
		return 0
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		c.fail(col, v, "int64")
	}
	return i
}

func (c *valueConv) nullInt64(v driver.Value, col string) *int64 {
	if v == nil {
		return nil
	}
	i := c.int64(v, col)
	return &i
}

func (c *valueConv) bool(v driver.Value, col string) bool {
	if i, ok := v.(int64); ok && (i == 0 || i == 1) {
		return i == 1
	}
	b, err := driver.Bool.ConvertValue(v)
	if err != nil {
		c.fail(col, v, "bool")
		return false
	}
	return b.(bool)
}

func (c *valueConv) bytes(v driver.Value, col string) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	}
	s, ok := text(v)
	if !ok {
		c.fail(col, v, "[]byte")
	}
	return []byte(s)
}

// NodeFromValues decodes one row of NodeColumns as a database/sql driver
// returns it, as ScanNode does (see EventFromValues).
func NodeFromValues(v []driver.Value) (Node, error) {
	if len(v) != 2 {
		return Node{}, fmt.Errorf("store: %d values for the node columns", len(v))
	}
	var c valueConv
	n := Node{Pos: uint64(c.int64(v[0], "pos")), Hash: c.bytes(v[1], "hash")}
	return n, c.err
}
