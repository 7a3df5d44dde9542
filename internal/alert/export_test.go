package alert

import "strconv"

// FormatSyslog returns the RFC 5424 message (without its frame) the
// Syslog sink writes for a.
func FormatSyslog(a Alert, host string, facility, pen, max int) []byte {
	return formatter{facility: facility, sdID: "custos@" + strconv.Itoa(pen), hostname: header(host, 255), max: max}.message(a)
}
