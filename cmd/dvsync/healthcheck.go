package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is 'dvsync healthcheck': one GET of a running
// daemon's health endpoint, exit 0 on 200 and 1 otherwise. It exists for
// container images without a shell or curl (distroless, scratch), whose
// HEALTHCHECK can only run the image's own binary.
func newHealthcheckCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if a running daemon's /healthz answers 200",
		Long: `healthcheck sends one GET to a running 'dvsync run' and exits 0 when it
answers 200, 1 otherwise, printing the status or the error. It reads no
config file: point --url at the daemon's http.listen address (a container
listening on 0.0.0.0:8080 is reached at 127.0.0.1:8080). Use --url
http://127.0.0.1:8080/readyz to check readiness instead of liveness.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return healthcheck(ctx, url)
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/healthz", "the endpoint to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// healthcheck returns nil when url answers 200 before ctx ends, and an
// error with the status and the first line of the body otherwise.
func healthcheck(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		return fmt.Errorf("healthcheck: %s: %s: %s", url, resp.Status, line)
	}
	return nil
}
