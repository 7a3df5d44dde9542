package atna

// Reason says why a message or a connection was refused. Reasons label a
// Prometheus counter: append-only, never renamed.
type Reason string

// The reasons for a refusal.
const (
	ReasonTLS           Reason = "tls_handshake"   // no client certificate, another CA, a failed handshake
	ReasonPlainTCP      Reason = "plain_tcp"       // bytes that are not TLS on the TLS port
	ReasonFrame         Reason = "frame"           // a bad octet count: the frame boundary is lost
	ReasonFrameTooLarge Reason = "frame_too_large" // a frame over the limit
	ReasonSyslog        Reason = "syslog"          // not an RFC 5424 message
	ReasonXML           Reason = "xml"             // malformed XML
	ReasonDoctype       Reason = "doctype"         // a DOCTYPE or other directive (DTDs, external entities)
	ReasonTooDeep       Reason = "too_deep"        // elements nested deeper than the limit
	ReasonTooLarge      Reason = "too_large"       // the XML is over the size limit
	ReasonInvalid       Reason = "invalid"         // well-formed, but not a usable DICOM audit message
	ReasonOverload      Reason = "overload"        // a connection over the limit of open connections
)

// Reasons lists every reason, for metrics that start at zero.
var Reasons = []Reason{ReasonTLS, ReasonPlainTCP, ReasonFrame, ReasonFrameTooLarge, ReasonSyslog,
	ReasonXML, ReasonDoctype, ReasonTooDeep, ReasonTooLarge, ReasonInvalid, ReasonOverload}

// Rejection is the error of a refused message. Its Detail is written by this
// package and never quotes the message, so it is safe to log; Line is the
// line of the XML at fault, when known.
type Rejection struct {
	Reason Reason
	Detail string
	Line   int
}

func (r *Rejection) Error() string {
	if r.Detail == "" {
		return string(r.Reason)
	}
	return string(r.Reason) + ": " + r.Detail
}

func reject(reason Reason, detail string) *Rejection {
	return &Rejection{Reason: reason, Detail: detail}
}
