package authz_test

import (
	"fmt"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

func Example() {
	// The store's custom roles; the built-in ones come with every policy.
	p, err := authz.Compile(1, []custos.Role{
		{Name: "clinician", ParentRole: custos.RoleAuditor, Permissions: []custos.Permission{"patient:read"}},
		{Name: "nurse", ParentRole: "clinician", Permissions: []custos.Permission{"chart:write"}},
	})
	if err != nil {
		panic(err)
	}
	// A change makes a new version; p still answers as before.
	p2, err := p.Add(custos.Role{Name: "ward_nurse", ParentRole: "nurse",
		Permissions: []custos.Permission{"ward:read"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Version(), p2.Version(), p.Has("ward_nurse", "ward:read"), p2.Has("ward_nurse", "ward:read"))

	// The fast path, then the same decision with its reason.
	roles := []string{"ward_nurse"}
	fmt.Println(p2.HasAny(roles, "patient:read"))
	d := p2.Decide(roles, "patient:read")
	fmt.Println(d.Reason("patient:read"))
	fmt.Println(p2.Decide(roles, custos.PermKeysManage).Reason(custos.PermKeysManage))

	// A change that would make a cycle is refused, naming it.
	_, err = p2.Replace(custos.Role{Name: "clinician", ParentRole: "ward_nurse"})
	fmt.Println(custos.KindOf(err), err.(*custos.Error).Detail)
	// Output:
	// 1 2 false true
	// true
	// allowed by role ward_nurse (inherited from clinician)
	// no role of the user grants keys:manage
	// conflict the roles would form the cycle clinician → ward_nurse → nurse → clinician
}
