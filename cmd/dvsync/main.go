// Command dvsync keeps SQL databases and Kafka in sync with Microsoft
// Dataverse. It is the only place where concrete sources and sinks are
// wired to the engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "dvsync:", err)
		os.Exit(1)
	}
}

// exitError carries an exit status for failures already reported to the
// user (validate's list of problems, for example).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "dvsync",
		Short: "Keep PostgreSQL, SQL Server and Kafka in sync with Microsoft Dataverse",
		Long: `dvsync streams inserts, updates and deletes from PostgreSQL (logical
replication) into the Dataverse Web API, driven by one config file and one
YAML mapping file per table.

Start with 'dvsync demo' to see it work end to end on this machine, then
'dvsync validate -c dvsync.yaml' and 'dvsync run -c dvsync.yaml' with your own
files. See docs/config.md and docs/mapping.md for the file formats.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newBackfillCmd(),
		newValidateCmd(),
		newDeadLettersCmd(),
		newConflictsCmd(),
		newConfigCmd(),
		newEmulatorCmd(),
		newDemoCmd(),
		newHealthcheckCmd(),
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print dvsync's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "dvsync", version)
			return err
		},
	}
}
