package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
)

// userCmd runs `custos user add|passwd|disable|enable|list`.
func userCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := map[string]func(*flag.FlagSet, *accessFlags) func(context.Context, access) (any, error){
		"add": userAdd, "passwd": userPasswd, "disable": userDisable, "enable": userEnable, "list": userList,
	}
	return runAccess(ctx, "user", "add|passwd|disable|enable|list", subs, args, stdout, stderr)
}

// roleCmd runs `custos role list|add|set|delete`.
func roleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := map[string]func(*flag.FlagSet, *accessFlags) func(context.Context, access) (any, error){
		"add": roleAdd, "set": roleSet, "delete": roleDelete, "list": roleList,
	}
	return runAccess(ctx, "role", "add|set|delete|list", subs, args, stdout, stderr)
}

// runAccess parses a subcommand's flags, opens the store or the server,
// runs it and prints what it answers.
func runAccess(ctx context.Context, cmd, usage string, subs map[string]func(*flag.FlagSet, *accessFlags) func(context.Context, access) (any, error),
	args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintf(stderr, "usage: custos %s %s [flags]  ('custos %s <sub> -h' for its flags)\n", cmd, usage, cmd)
		return exitUsageErr
	}
	fs := flag.NewFlagSet(cmd+" "+args[0], flag.ContinueOnError)
	var af accessFlags
	af.flags(fs)
	run := subs[args[0]](fs, &af)
	if ok, code := parse(fs, args[1:], stderr); !ok {
		return code
	}
	acc, err := af.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "custos %s %s: %v\n", cmd, args[0], err)
		return exitError
	}
	defer acc.close()
	out, err := run(ctx, acc)
	if err != nil {
		fmt.Fprintf(stderr, "custos %s %s: %s\n", cmd, args[0], explain(err))
		return exitError
	}
	switch v := out.(type) {
	case nil:
	case string:
		fmt.Fprintln(stderr, v)
	default:
		printJSON(stdout, v)
	}
	return exitOK
}

// explain says what a custos error says, with its fields.
func explain(err error) string {
	if e, ok := err.(*custos.Error); ok && e.Kind != custos.Internal {
		msg := e.Detail
		for _, f := range e.Fields {
			msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
		}
		return msg
	}
	return err.Error()
}

func userAdd(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	id := fs.String("id", "", "the user's id (login name)")
	name := fs.String("name", "", "display name")
	var roles listFlag
	fs.Var(&roles, "role", "a role of the user (repeatable)")
	pw := fs.Bool("password-stdin", false, "read the user's password from standard input")
	return func(ctx context.Context, a access) (any, error) {
		c := authn.UserChange{ID: *id, Name: name, Roles: (*[]string)(&roles)}
		if roles == nil {
			c.Roles = &[]string{}
		}
		if *pw {
			p, err := readPassword(stdin)
			if err != nil {
				return nil, err
			}
			c.Password = &p
		}
		return a.saveUser(ctx, c, true)
	}
}

func userPasswd(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	id := fs.String("id", "", "the user's id")
	return func(ctx context.Context, a access) (any, error) {
		p, err := readPassword(stdin)
		if err != nil {
			return nil, err
		}
		if _, err := a.saveUser(ctx, authn.UserChange{ID: *id, Password: &p}, false); err != nil {
			return nil, err
		}
		return fmt.Sprintf("password of %s changed", *id), nil
	}
}

func userDisable(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	id := fs.String("id", "", "the user's id")
	terminate := fs.Bool("terminate", false, "terminate (final) rather than suspend")
	reason := fs.String("reason", "", "why, for the trail")
	return func(ctx context.Context, a access) (any, error) {
		status := authn.StatusSuspended
		if *terminate {
			status = authn.StatusTerminated
		}
		return a.saveUser(ctx, authn.UserChange{ID: *id, Status: &status, StatusReason: *reason}, false)
	}
}

func userEnable(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	id := fs.String("id", "", "the user's id")
	return func(ctx context.Context, a access) (any, error) {
		status := authn.StatusActive
		return a.saveUser(ctx, authn.UserChange{ID: *id, Status: &status}, false)
	}
}

func userList(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	return func(ctx context.Context, a access) (any, error) {
		return a.users(ctx)
	}
}

func roleFlags(fs *flag.FlagSet) func() custos.Role {
	name := fs.String("name", "", "the role's name")
	desc := fs.String("description", "", "what the role is for")
	parent := fs.String("parent", "", "the role it inherits from")
	var perms listFlag
	fs.Var(&perms, "permission", "a permission codename area:verb (repeatable)")
	return func() custos.Role {
		r := custos.Role{Name: *name, Description: *desc, ParentRole: *parent, Permissions: []custos.Permission{}}
		for _, p := range perms {
			for _, one := range strings.Split(p, ",") {
				r.Permissions = append(r.Permissions, custos.Permission(strings.TrimSpace(one)))
			}
		}
		return r
	}
}

func roleAdd(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	role := roleFlags(fs)
	return func(ctx context.Context, a access) (any, error) { return a.putRole(ctx, role(), true) }
}

func roleSet(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	role := roleFlags(fs)
	return func(ctx context.Context, a access) (any, error) { return a.putRole(ctx, role(), false) }
}

func roleDelete(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	name := fs.String("name", "", "the role's name")
	to := fs.String("reparent-to", "", "give the role's children this parent (\"\" for none)")
	return func(ctx context.Context, a access) (any, error) {
		reparent := false
		fs.Visit(func(f *flag.Flag) { reparent = reparent || f.Name == "reparent-to" })
		if err := a.deleteRole(ctx, *name, reparent, *to); err != nil {
			return nil, err
		}
		return fmt.Sprintf("role %s deleted", *name), nil
	}
}

func roleList(fs *flag.FlagSet, _ *accessFlags) func(context.Context, access) (any, error) {
	return func(ctx context.Context, a access) (any, error) { return a.roles(ctx) }
}
