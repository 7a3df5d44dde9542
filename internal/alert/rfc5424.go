package alert

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// formatter writes alerts as RFC 5424 messages
// (https://www.rfc-editor.org/rfc/rfc5424#section-6):
//
//	<PRI>1 TIMESTAMP HOSTNAME custos - MSGID [custos@PEN params…] description
//
// PRI is facility·8 plus the severity (severityCode); TIMESTAMP is the
// alert's At in UTC to the microsecond; MSGID is the event type. The
// structured data carries the alert's fields (sdParams); the message is
// the description. Control characters in any value become spaces, so a
// receiver that writes one line per message cannot be fooled into
// writing two.
type formatter struct {
	facility int
	sdID     string
	hostname string
	max      int
}

// severityCode maps an alert to a syslog severity: CRITICAL 2 (critical),
// HIGH 3 (error), MEDIUM 4 (warning), LOW 5 (notice). A status change
// (acknowledged, resolved) is 6 (informational) whatever the event's
// severity: it reports handling, not a threat.
func severityCode(a Alert) int {
	if a.Kind == Status {
		return 6
	}
	switch a.SecurityEvent.Severity {
	case custos.SeverityCritical:
		return 2
	case custos.SeverityHigh:
		return 3
	case custos.SeverityMedium:
		return 4
	}
	return 5
}

// sdParams are the structured-data parameters, in order. Their names are
// part of the contract with receivers: append-only.
func sdParams(a Alert) [][2]string {
	se := a.SecurityEvent
	p := [][2]string{
		{"delivery_id", a.DeliveryID()}, {"id", a.ID}, {"index", strconv.FormatUint(a.Index, 10)},
		{"kind", string(a.Kind)}, {"event_type", string(se.EventType)}, {"severity", string(se.Severity)},
		{"status", string(se.Status)}, {"rule", se.Rule}, {"user", se.User}, {"ip", se.IPAddress},
	}
	if !se.Timestamp.IsZero() {
		p = append(p, [2]string{"timestamp", se.Timestamp.UTC().Format(rfc3339Micro)})
	}
	if d := bytes.TrimSpace(se.AdditionalData); len(d) > 0 && string(d) != "null" {
		var c bytes.Buffer
		if json.Compact(&c, d) == nil {
			p = append(p, [2]string{"data", c.String()})
		}
	}
	return p
}

const rfc3339Micro = "2006-01-02T15:04:05.000000Z07:00"

// frame returns the message of a with its octet-count frame.
func (f formatter) frame(a Alert) []byte {
	m := f.message(a)
	return append([]byte(strconv.Itoa(len(m))+" "), m...)
}

// message returns a's RFC 5424 message, no longer than f.max: over it,
// the data parameter goes, then the end of the description.
func (f formatter) message(a Alert) []byte {
	params := sdParams(a)
	desc := clean(a.SecurityEvent.Description)
	m := f.render(a, params, desc)
	if len(m) > f.max && params[len(params)-1][0] == "data" {
		params = params[:len(params)-1]
		m = f.render(a, params, desc)
	}
	if over := len(m) - f.max; over > 0 {
		desc = truncate(desc, max(0, len(desc)-over))
		m = f.render(a, params, desc)
	}
	return m
}

func (f formatter) render(a Alert, params [][2]string, desc string) []byte {
	var b bytes.Buffer
	b.WriteString("<" + strconv.Itoa(f.facility*8+severityCode(a)) + ">1 ")
	if a.At.IsZero() {
		b.WriteString("-")
	} else {
		b.WriteString(a.At.UTC().Format(rfc3339Micro))
	}
	b.WriteString(" " + f.hostname + " custos - " + header(string(a.SecurityEvent.EventType), 32) + " [" + f.sdID)
	for _, p := range params {
		b.WriteString(" " + p[0] + `="`)
		b.WriteString(sdEscape.Replace(clean(p[1])))
		b.WriteString(`"`)
	}
	b.WriteString("]")
	if desc != "" {
		b.WriteString(" " + desc)
	}
	return b.Bytes()
}

// sdEscape escapes a PARAM-VALUE (RFC 5424 §6.3.3).
var sdEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// header returns s as a header field: printable US-ASCII without spaces,
// at most n bytes, "-" (the nil value) when nothing is left.
func header(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// clean makes s valid UTF-8 with every control character a space.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
