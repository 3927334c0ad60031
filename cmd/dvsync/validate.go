package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/mapping"
)

func newValidateCmd() *cobra.Command {
	var path string
	var online bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "validate -c FILE [--online]",
		Short: "Check a config file and its mapping files",
		Long: `validate reads the daemon config file and every mapping file it names,
checks types, required fields, unknown fields and cross references, and prints
every problem as FILE:LINE: field: reason. Without --online it connects to
nothing, so it is safe to run in CI on every change to the files.

With --online it also connects, reads only, and checks every mapping against
the live Dataverse metadata (the table and entity set, every attribute and
whether the column's declared type fits it, choice values, the alternate key
with exactly the mapped attributes, lookups and their parents' keys, soft
delete attributes) and against the source catalog (for PostgreSQL: wal_level,
the table, its columns, and a primary key or replica identity).

Exit status: 0 when everything is valid, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, set, err := loadAll(path)
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
			if online {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				problems := validateOnline(ctx, cfg)
				for _, line := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), line)
				}
				if len(problems) > 0 {
					return exitError{code: 1}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, checked online against Dataverse and the sources (%d mapped tables on %d connections)\n", path, n, len(set.Connections()))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d mapped tables on %d connections)\n", path, n, len(set.Connections()))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "dvsync.yaml", "daemon config file")
	cmd.Flags().BoolVar(&online, "online", false, "also check the mappings against the live Dataverse metadata and source catalogs")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --online, how long the checks may take in all")
	return cmd
}

// validateOnline checks the mappings of a valid config against Dataverse
// and every source it uses, and returns one line per problem. The
// connections are checked one after another: validation is a one-off
// command, and ordered output is easier to read than a faster one.
func validateOnline(ctx context.Context, cfg *config.Config) []string {
	// loadAll has accepted these files, so reading them again cannot fail
	// but for a file changed in between; say so if it was.
	files, err := cfg.MappingFiles()
	if err != nil {
		return problemLines(err)
	}
	ms, err := mapping.LoadFiles(files)
	if err != nil {
		return problemLines(err)
	}
	var out []string
	client, err := newDataverseClient(cfg)
	if err == nil {
		var ps onlineProblems
		ps, err = checkDataverse(ctx, client, ms)
		out = append(out, ps...)
		client.CloseIdleConnections()
	}
	if err != nil {
		out = append(out, fmt.Sprintf("%s: %v", cfg.Path, err))
	}
	byConn := map[string][]*mapping.Mapping{}
	var conns []string
	for _, m := range ms {
		if _, seen := byConn[m.Source.Connection]; !seen {
			conns = append(conns, m.Source.Connection)
		}
		byConn[m.Source.Connection] = append(byConn[m.Source.Connection], m)
	}
	for _, name := range conns {
		conn := cfg.Connections[name]
		if conn.Type != "postgres" {
			out = append(out, fmt.Sprintf("%s: connections.%s: online checks of %s sources are not supported; only the mapping files were checked", cfg.Path, name, conn.Type))
			continue
		}
		ps, err := checkPostgres(ctx, cfg, name, conn, byConn[name])
		out = append(out, ps...)
		if err != nil {
			out = append(out, err.Error())
		}
	}
	return out
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
