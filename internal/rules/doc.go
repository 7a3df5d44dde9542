// Package rules is Custos's streaming detection (placeholder comment).
package rules
