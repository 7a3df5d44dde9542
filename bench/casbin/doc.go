// Package casbinbench sets Custos's access-control decisions (internal/authz)
// side by side with casbin's on the same role hierarchy and rules. It holds
// only benchmarks and lives in a module of its own so that casbin never
// enters Custos's dependency graph; nothing imports it.
package casbinbench
