package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/internal/pgcluster"
	"github.com/dvsync/dvsync/odataclient"
)

func newDemoCmd() *cobra.Command {
	var examples string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run PostgreSQL → Dataverse end to end on this machine, then clean up",
		Long: `demo starts a throwaway PostgreSQL cluster with logical replication, the
Dataverse emulator, and 'dvsync run' with the example config and mapping in
deploy/examples. It then inserts, updates and deletes rows of a customers
table and prints the matching Dataverse account rows as they change, read back
over the emulator's Web API. Everything it started is stopped and removed
before it exits.

It needs the PostgreSQL 15 server binaries (make demo installs them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &demo{out: cmd.OutOrStdout(), examples: examples}
			return d.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&examples, "examples", "deploy/examples", "folder with dvsync.yaml, mappings/ and schema.yaml")
	return cmd
}

type demo struct {
	out      io.Writer
	examples string
	tmp      string
	db       *pgx.Conn
	dv       *odataclient.Client
	started  time.Time
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] "+format+"\n", append([]any{time.Since(d.started).Seconds()}, args...)...)
}

func (d *demo) run(ctx context.Context) (err error) {
	d.started = time.Now()
	if d.tmp, err = os.MkdirTemp("", "dvsync-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.tmp)

	d.say("starting a throwaway PostgreSQL cluster (wal_level=logical)")
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer func() {
		if serr := pg.Stop(context.Background()); serr != nil && err == nil {
			err = fmt.Errorf("stop postgres: %w", serr)
		}
	}()
	if err := pg.CreateDatabase(ctx, "demo"); err != nil {
		return err
	}
	dsn := pg.DSN("demo")
	if d.db, err = pgx.Connect(ctx, dsn); err != nil {
		return err
	}
	defer d.db.Close(context.Background())
	if _, err := d.db.Exec(ctx, `CREATE TABLE public.customers (
		id bigint PRIMARY KEY, name text NOT NULL, email text, phone text,
		credit_limit numeric(12,2), employees int)`); err != nil {
		return err
	}

	d.say("starting the Dataverse emulator with %s", filepath.Join(d.examples, "schema.yaml"))
	token := randomToken()
	dvURL, stopEmulator, err := d.startEmulator(token)
	if err != nil {
		return err
	}
	defer stopEmulator()
	if d.dv, err = odataclient.New(odataclient.Options{BaseURL: dvURL, Tokens: odataclient.StaticToken(token)}); err != nil {
		return err
	}

	d.say("starting dvsync run -c %s", filepath.Join(d.examples, "dvsync.yaml"))
	daemon, err := d.startDaemon(ctx, dsn, dvURL, token)
	if err != nil {
		return err
	}
	defer daemon.kill()

	if err := d.script(ctx); err != nil {
		d.say("dvsync's log (%s) ends with:\n%s", daemon.logPath, tail(daemon.logPath, 30))
		return err
	}

	d.say("stopping dvsync with SIGTERM")
	if err := daemon.stop(15 * time.Second); err != nil {
		d.say("dvsync's log ends with:\n%s", tail(daemon.logPath, 30))
		return err
	}
	d.say("done: dvsync stopped cleanly; removing the cluster and the emulator")
	return nil
}

// script makes the changes and shows Dataverse catching up with each.
func (d *demo) script(ctx context.Context) error {
	steps := []struct {
		title string
		sql   string
		want  func([]account) bool
	}{
		{
			"INSERT three customers",
			`INSERT INTO customers VALUES
			  (1, 'Contoso', 'info@contoso.example', '+1 555 0100', 250000.00, 120),
			  (2, 'Fabrikam', 'hello@fabrikam.example', '+1 555 0101', 90000.50, 45),
			  (3, 'Northwind', 'sales@northwind.example', NULL, NULL, 8)`,
			func(rows []account) bool { return len(rows) == 3 },
		},
		{
			"UPDATE customer 2: new name and credit limit",
			`UPDATE customers SET name = 'Fabrikam Europe', credit_limit = 120000.75 WHERE id = 2`,
			func(rows []account) bool { return len(rows) == 3 && rows[1].Name == "Fabrikam Europe" },
		},
		{
			"DELETE customer 3",
			`DELETE FROM customers WHERE id = 3`,
			func(rows []account) bool { return len(rows) == 2 },
		},
	}
	for _, s := range steps {
		d.say("PostgreSQL: %s", s.title)
		at := time.Now()
		if _, err := d.db.Exec(ctx, s.sql); err != nil {
			return err
		}
		rows, err := d.waitFor(ctx, s.want, 20*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
		d.say("Dataverse caught up in %s; accounts now:", time.Since(at).Round(time.Millisecond))
		printAccounts(d.out, rows)
	}
	return nil
}

// account is the slice of a Dataverse account row the demo prints.
type account struct {
	AccountNumber string   `json:"accountnumber"`
	Name          string   `json:"name"`
	Email         *string  `json:"emailaddress1"`
	Phone         *string  `json:"telephone1"`
	CreditLimit   *float64 `json:"creditlimit"`
	Employees     *int     `json:"numberofemployees"`
}

func (d *demo) accounts(ctx context.Context) ([]account, error) {
	page, err := d.dv.List(ctx, "accounts", odataclient.Query{
		Select:  []string{"accountnumber", "name", "emailaddress1", "telephone1", "creditlimit", "numberofemployees"},
		OrderBy: "accountnumber",
	})
	if err != nil {
		return nil, err
	}
	rows := make([]account, 0, len(page.Rows))
	for _, raw := range page.Rows {
		var a account
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		rows = append(rows, a)
	}
	return rows, nil
}

func (d *demo) waitFor(ctx context.Context, ok func([]account) bool, timeout time.Duration) ([]account, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := d.accounts(ctx)
		if err == nil && ok(rows) {
			return rows, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("the Dataverse rows did not reach the expected rows within %s", timeout)
			}
			return rows, err
		case <-tick.C:
		}
	}
}

func printAccounts(w io.Writer, rows []account) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    accountnumber\tname\temailaddress1\ttelephone1\tcreditlimit\tnumberofemployees")
	for _, r := range rows {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", r.AccountNumber, r.Name, strOrNull(r.Email), strOrNull(r.Phone), numOrNull(r.CreditLimit), intOrNull(r.Employees))
	}
	tw.Flush()
}

func strOrNull(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func numOrNull(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprintf("%.2f", *f)
}

func intOrNull(i *int) string {
	if i == nil {
		return "null"
	}
	return fmt.Sprint(*i)
}

func (d *demo) startEmulator(token string) (string, func(), error) {
	schema, err := emulator.LoadSchema(filepath.Join(d.examples, "schema.yaml"))
	if err != nil {
		return "", nil, err
	}
	srv, err := emulator.New(schema, emulator.Options{Token: token})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed at shutdown
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}

func (d *demo) startDaemon(ctx context.Context, dsn, dvURL, token string) (*daemonProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := spawnDaemon(ctx, self, filepath.Join(d.examples, "dvsync.yaml"), filepath.Join(d.tmp, "dvsync.log"), []string{
		"PG_DSN=" + dsn,
		"DATAVERSE_URL=" + dvURL,
		"DATAVERSE_TOKEN=" + token,
		"DVSYNC_STATE=" + filepath.Join(d.tmp, "state.db"),
	})
	if err != nil {
		return nil, err
	}
	d.say("dvsync is ready (health and metrics on http://%s)", p.httpAddr)
	return p, nil
}
