package atna

import (
	"bytes"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// syslogParser reads the RFC 5424 header of one message at a time with
// go-syslog's parser, which is not safe for concurrent use: one per
// connection.
type syslogParser struct{ m syslog.Machine }

func newSyslogParser() *syslogParser { return &syslogParser{m: rfc5424.NewMachine()} }

// body returns the MSG part of an RFC 5424 message, without the line feed
// some senders end it with, as a new slice.
func (p *syslogParser) body(frame []byte) ([]byte, error) {
	frame = bytes.TrimSuffix(frame, []byte("\n"))
	msg, err := p.m.Parse(frame)
	if err != nil {
		return nil, reject(ReasonSyslog, "not an RFC 5424 syslog message")
	}
	m, ok := msg.(*rfc5424.SyslogMessage)
	if !ok || m.Message == nil || len(bytes.TrimSpace([]byte(*m.Message))) == 0 {
		return nil, reject(ReasonInvalid, "the syslog message carries no audit message")
	}
	return []byte(*m.Message), nil
}
