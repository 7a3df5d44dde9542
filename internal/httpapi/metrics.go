package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are labelled by route pattern and status only: never by path,
// query or user, which may hold PHI.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ingested prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "custos_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custos_events_ingested_total", Help: "Audit events acknowledged through POST /v1/events.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.ingested)
	}
	return m
}

func (a *API) metricsHandler() http.HandlerFunc {
	if a.m.reg == nil {
		return a.notFound
	}
	h := promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{})
	return h.ServeHTTP
}
