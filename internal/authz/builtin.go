package authz

import (
	"slices"

	"github.com/custos-audit/custos"
)

// builtIns are Custos's own roles. Every Policy holds them; the API can
// neither change nor delete them, but a custom role may name one as its
// parent. The administrator holds every one of custos.Permissions, so it
// gains each permission added there; adding one to another built-in role
// widens what existing keys and users may do, so do it only together with
// the permission's introduction.
var builtIns = []custos.Role{
	{
		Name:        custos.RoleAdministrator,
		Description: "Everything Custos can do.",
		Permissions: custos.Permissions,
	},
	{
		Name:        custos.RoleSecurityOfficer,
		Description: "Investigates security events and blocks addresses.",
		Permissions: []custos.Permission{custos.PermSecurityRead, custos.PermSecurityManage,
			custos.PermBlocksManage, custos.PermEventsRead, custos.PermProofsRead,
			custos.PermReportsGenerate, custos.PermGrantsRead},
	},
	{
		Name:        custos.RolePrivacyOfficer,
		Description: "Reviews access to patient records and emergency grants.",
		Permissions: []custos.Permission{custos.PermEventsRead, custos.PermProofsRead,
			custos.PermReportsGenerate, custos.PermGrantsRead, custos.PermGrantsReview,
			custos.PermSecurityRead},
	},
	{
		Name:        custos.RoleAuditor,
		Description: "Reads the trail and its proofs and generates reports (the read scope).",
		Permissions: []custos.Permission{custos.PermEventsRead, custos.PermProofsRead,
			custos.PermReportsGenerate},
	},
	{
		Name:        custos.RoleIngestService,
		Description: "Appends audit events, reports security events, checks blocks (the ingest scope).",
		Permissions: []custos.Permission{custos.PermEventsWrite, custos.PermSecurityReport, custos.PermBlocksCheck},
	},
	{
		Name:        custos.RoleMetrics,
		Description: "Reads Prometheus metrics (the metrics scope).",
		Permissions: []custos.Permission{custos.PermMetricsRead},
	},
}

// BuiltIns returns Custos's built-in roles in a fixed order, with their
// permissions sorted and BuiltIn set. The slices are the caller's.
func BuiltIns() []custos.Role {
	roles := make([]custos.Role, len(builtIns))
	for i, r := range builtIns {
		roles[i] = builtInDef(r)
		roles[i].EffectivePermissions = slices.Clone(roles[i].Permissions)
		roles[i].BuiltIn = true
	}
	return roles
}

// IsBuiltIn reports whether name is one of the built-in roles.
func IsBuiltIn(name string) bool {
	return slices.ContainsFunc(builtIns, func(r custos.Role) bool { return r.Name == name })
}

// builtInDef is a built-in role in its stored form.
func builtInDef(r custos.Role) custos.Role {
	r.Permissions = slices.Clone(r.Permissions)
	slices.Sort(r.Permissions)
	return r
}
