package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a config file and its mapping files without connecting to anything",
		Long: `validate reads the daemon config file and every mapping file it names,
checks types, required fields, unknown fields and cross references, and prints
every problem as FILE:LINE: field: reason. It connects to nothing, so it is safe
to run in CI on every change to the files.

Exit status: 0 when everything is valid, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, set, err := loadAll(path)
			if err != nil {
				for _, line := range problemLines(err) {
					fmt.Fprintln(cmd.ErrOrStderr(), line)
				}
				return exitError{code: 1}
			}
			n := 0
			for _, c := range set.Connections() {
				n += len(set.Tables(c))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d mapped tables on %d connections)\n", path, n, len(set.Connections()))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "dvsync.yaml", "daemon config file")
	return cmd
}

// problemLines flattens joined errors into one line per problem.
func problemLines(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		for _, l := range strings.Split(e.Error(), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
	}
	walk(err)
	if len(out) == 0 {
		out = append(out, err.Error())
	}
	return out
}
