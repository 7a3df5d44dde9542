package atna

import "github.com/prometheus/client_golang/prometheus"

// metrics are labelled by transport and reason only: never by sender
// address, user or patient.
type metrics struct {
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	conns    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_atna_messages_total", Help: "ATNA audit messages durably appended to the ledger, by transport.",
		}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_atna_rejected_total", Help: "ATNA messages and connections refused, by transport and reason; none was stored.",
		}, []string{"transport", "reason"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custos_atna_connections", Help: "Open ATNA TLS connections.",
		}),
	}
	for _, tr := range []string{transportTLS, transportUDP} {
		m.accepted.WithLabelValues(tr)
		for _, r := range Reasons {
			m.rejected.WithLabelValues(tr, string(r))
		}
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.rejected, m.conns)
	}
	return m
}

// The transports, as metric labels.
const (
	transportTLS = "tls"
	transportUDP = "udp"
)
