package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/emulator"
)

func newEmulatorCmd() *cobra.Command {
	var listen, schemaPath, token, logFormat string
	var limits emulator.Limits
	var faults emulator.Faults
	var tokenLifetime time.Duration
	cmd := &cobra.Command{
		Use:   "emulator --schema FILE [--listen ADDR] [--token TOKEN]",
		Short: "Serve a local, in-memory Dataverse-compatible Web API",
		Long: `emulator serves the Dataverse Web API (/api/data/v9.2/) for the tables of a
schema file, in memory, so that dvsync, its tests and your own CI can run
without a Dataverse environment. Rows are lost when it stops.

Every request needs "Authorization: Bearer TOKEN". The token comes from
--token, else $DVSYNC_EMULATOR_TOKEN, else a random one printed at start-up.
Applications listed in the schema file can also get expiring tokens from
/{tenant}/oauth2/v2.0/token with the client-credentials grant.

Service protection limits are off unless set; Dataverse's defaults are
--limit-requests 6000 --limit-execution-time 20m --limit-concurrent 52.
The --fault-* flags inject failures from the start; PUT /_emulator/faults
changes them at run time. See docs/emulator.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(os.Stderr, "info", logFormat)
			if err != nil {
				return err
			}
			schema, err := emulator.LoadSchema(schemaPath)
			if err != nil {
				return err
			}
			if token == "" {
				token = os.Getenv("DVSYNC_EMULATOR_TOKEN")
			}
			generated := token == ""
			if generated {
				token = randomToken()
			}
			srv, err := emulator.New(schema, emulator.Options{
				Token: token, Logger: logger, Limits: limits, Faults: faults, TokenLifetime: tokenLifetime,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			url := "http://" + ln.Addr().String()
			fmt.Fprintf(cmd.OutOrStdout(), "Dataverse emulator serving %s/api/data/v9.2/ (%d tables from %s)\n", url, len(schema.Tables), schemaPath)
			if generated {
				// Printed once, on the terminal that started it, because the
				// user has no other way to learn it.
				fmt.Fprintf(cmd.OutOrStdout(), "Bearer token: %s\n", token)
			}
			if err := serveUntilDone(cmd.Context(), ln, srv); err != nil {
				srv.Close()
				return err
			}
			// Deliver the webhook calls already queued before exiting.
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5580", "address to listen on")
	cmd.Flags().StringVar(&schemaPath, "schema", "", "schema file with the tables to serve (required)")
	cmd.Flags().StringVar(&token, "token", "", "bearer token clients must send")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f := cmd.Flags()
	f.IntVar(&limits.Requests, "limit-requests", 0, "requests per user per window before 429 (0: no limit)")
	f.DurationVar(&limits.ExecutionTime, "limit-execution-time", 0, "combined execution time per user per window before 429 (0: no limit)")
	f.DurationVar(&limits.Window, "limit-window", 5*time.Minute, "sliding window of --limit-requests and --limit-execution-time")
	f.IntVar(&limits.Concurrent, "limit-concurrent", 0, "concurrent requests per user before 429 (0: no limit)")
	f.IntVar(&limits.DOPHint, "dop-hint", 4, "x-ms-dop-hint value sent on every response")
	f.DurationVar(&faults.Latency, "fault-latency", 0, "delay added to every API request")
	f.Float64Var(&faults.ErrorRate, "fault-error-rate", 0, "fraction of API requests answered 503")
	f.Float64Var(&faults.ThrottleRate, "fault-throttle-rate", 0, "fraction of API requests answered 429")
	f.Float64Var(&faults.DropRate, "fault-drop-rate", 0, "fraction of API requests whose connection is closed without an answer")
	f.DurationVar(&tokenLifetime, "token-lifetime", time.Hour, "lifetime of tokens from the token endpoint")
	_ = cmd.MarkFlagRequired("schema")
	return cmd
}

func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
