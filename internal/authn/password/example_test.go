package password_test

import (
	"context"
	"fmt"

	"github.com/custos-audit/custos/internal/authn/password"
)

func Example() {
	ctx := context.Background()
	h, err := password.NewHasher(password.Config{}) // DefaultParams, NumCPU slots
	if err != nil {
		panic(err)
	}
	stored, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Verify(ctx, "correct horse battery staple", stored) == nil)
	fmt.Println(h.Verify(ctx, "wrong horse battery staple", stored))
	fmt.Println(h.VerifyUnknown(ctx, "any password at all"))
	// Output:
	// true
	// password.verify: unauthenticated: wrong user name or password
	// password.verify: unauthenticated: wrong user name or password
}
