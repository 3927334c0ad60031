package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/state"
)

// conflictOpts are the flags every conflicts subcommand shares.
type conflictOpts struct {
	config  string
	mapping string
}

// conflictEnv is what the conflicts subcommands work with: the config,
// the mappings, and the state store, opened offline.
type conflictEnv struct {
	cfg   *config.Config
	set   *mapping.Set
	store state.Store
	sync  state.SyncStore
}

// open loads the config and mappings and opens the state store, which
// fails while a daemon holds it.
func (o *conflictOpts) open(ctx context.Context) (*conflictEnv, error) {
	cfg, set, err := loadAll(o.config)
	if err != nil {
		return nil, err
	}
	if o.mapping != "" {
		if m := bothMapping(set, o.mapping); m == nil {
			return nil, fmt.Errorf("--mapping %s: no mapping with direction both has that name", o.mapping)
		}
	}
	st, err := openState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ss, ok := st.(state.SyncStore)
	if !ok {
		st.Close()
		return nil, errors.New("the state store keeps no sync state")
	}
	return &conflictEnv{cfg: cfg, set: set, store: st, sync: ss}, nil
}

// mappings returns the direction both mappings the command looks at.
func (o *conflictOpts) mappings(set *mapping.Set) []*mapping.Mapping {
	var out []*mapping.Mapping
	for _, m := range set.Mappings() {
		if m.Direction == mapping.Both && (o.mapping == "" || m.Name == o.mapping) {
			out = append(out, m)
		}
	}
	return out
}

// bothMapping returns the mapping named name if its direction is both.
func bothMapping(set *mapping.Set, name string) *mapping.Mapping {
	for _, m := range set.Mappings() {
		if m.Name == name && m.Direction == mapping.Both {
			return m
		}
	}
	return nil
}

func newConflictsCmd() *cobra.Command {
	var o conflictOpts
	cmd := &cobra.Command{
		Use:   "conflicts list|show|resolve",
		Short: "Inspect and settle the conflicts the manual policy parked",
		Long: `A mapping with direction both and conflict policy manual (or tie_break
manual) does not decide a row changed on both sides: it parks both versions
in the state file, and each side keeps its own until an operator settles the
conflict. These commands work on the state file named by the config, which
the running daemon holds locked: stop the daemon first.

'list' shows the parked conflicts, 'show ID' both versions and the values
last synced, and 'resolve ID --take source|dataverse' writes the chosen
version to the other side (Dataverse through the Web API, the source
through the connection) and records it as synced. Conflict IDs are per
mapping; give --mapping when two mappings park conflicts.`,
	}
	cmd.PersistentFlags().StringVarP(&o.config, "config", "c", "dvsync.yaml", "daemon config file")
	cmd.PersistentFlags().StringVarP(&o.mapping, "mapping", "m", "", "only this mapping (default: every mapping with direction both)")
	cmd.AddCommand(newConflictsListCmd(&o), newConflictsShowCmd(&o), newConflictsResolveCmd(&o))
	return cmd
}

func newConflictsListCmd(o *conflictOpts) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List parked conflicts, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.open(cmd.Context())
			if err != nil {
				return err
			}
			defer env.store.Close()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tMAPPING\tDETECTED\tKEY\tSOURCE CHANGED\tDATAVERSE CHANGED")
			for _, m := range o.mappings(env.set) {
				pcs, err := env.sync.ParkedConflicts(cmd.Context(), m.Name, limit)
				if err != nil {
					return err
				}
				for _, pc := range pcs {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", pc.ID, pc.Mapping, pc.Detected.UTC().Format(time.RFC3339),
						pc.Key, changedColumns(&pc, conflict.Source), changedColumns(&pc, conflict.Dataverse))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "at most this many per mapping (0: all)")
	return cmd
}

func newConflictsShowCmd(o *conflictOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID...",
		Short: "Print parked conflicts in full: the last synced values and both versions",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseConflictIDs(args)
			if err != nil {
				return err
			}
			env, err := o.open(cmd.Context())
			if err != nil {
				return err
			}
			defer env.store.Close()
			for _, id := range ids {
				pc, _, err := o.find(cmd.Context(), env, id)
				if err != nil {
					return err
				}
				printConflict(cmd.OutOrStdout(), &pc)
			}
			return nil
		},
	}
}

func newConflictsResolveCmd(o *conflictOpts) *cobra.Command {
	var take string
	cmd := &cobra.Command{
		Use:   "resolve ID... --take source|dataverse",
		Short: "Settle parked conflicts: write the chosen side's version to the other side",
		Long: `resolve settles each conflict with the version of the side --take names:
--take source writes the source's version to Dataverse, --take dataverse
writes Dataverse's version to the source table (a deletion deletes the row
there). The columns synced both ways are written, unconditionally: what the
other side holds now is replaced. The row is then recorded as synced at that
version and the conflict removed; the daemon syncs the row's later changes
as usual.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var side conflict.Side
			switch take {
			case "source":
				side = conflict.Source
			case "dataverse":
				side = conflict.Dataverse
			default:
				return fmt.Errorf("--take %q: give source or dataverse", take)
			}
			ids, err := parseConflictIDs(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			env, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer env.store.Close()
			for _, id := range ids {
				pc, m, err := o.find(ctx, env, id)
				if err != nil {
					return err
				}
				if err := env.resolve(ctx, m, &pc, side); err != nil {
					return fmt.Errorf("conflict %d of mapping %s: %w", id, m.Name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "conflict %d of mapping %s: took %s\n", id, m.Name, take)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&take, "take", "", "the side whose version wins: source or dataverse (required)")
	_ = cmd.MarkFlagRequired("take")
	return cmd
}

// find returns the parked conflict id and its mapping. IDs are per
// mapping: an id parked under several is refused without --mapping.
func (o *conflictOpts) find(ctx context.Context, env *conflictEnv, id uint64) (state.ParkedConflict, *mapping.Mapping, error) {
	var (
		found []state.ParkedConflict
		ms    []*mapping.Mapping
		names []string
	)
	for _, m := range o.mappings(env.set) {
		pc, err := env.sync.ParkedConflict(ctx, m.Name, id)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return pc, nil, err
		}
		found, ms, names = append(found, pc), append(ms, m), append(names, m.Name)
	}
	switch len(found) {
	case 0:
		return state.ParkedConflict{}, nil, fmt.Errorf("no parked conflict %d (see 'dvsync conflicts list')", id)
	case 1:
		return found[0], ms[0], nil
	}
	return state.ParkedConflict{}, nil, fmt.Errorf("conflict %d is parked under mappings %s: give --mapping", id, strings.Join(names, ", "))
}

// resolve writes the version of side take of pc to the other side and
// settles the conflict.
func (env *conflictEnv) resolve(ctx context.Context, m *mapping.Mapping, pc *state.ParkedConflict, take conflict.Side) error {
	client, err := newDataverseClient(env.cfg)
	if err != nil {
		return err
	}
	a := &adapters{cfg: env.cfg, set: env.set, client: client, store: env.store, log: slog.New(slog.DiscardHandler)}
	a.live.Store(env.set)
	s, err := newMappingSync(m, a.live.Load, env.store, a.log, nil)
	if err != nil {
		return err
	}
	version := pc.DataverseVersion
	if take == conflict.Source {
		version, err = env.writeDataverse(ctx, a, m, pc)
	} else {
		err = env.writeSource(ctx, a, m, pc)
	}
	if err != nil {
		return err
	}
	_, err = s.Settle(ctx, pc.ID, take, version)
	return err
}

// sourceRecord is a version of pc's row as a record of the source table.
func sourceRecord(m *mapping.Mapping, pc *state.ParkedConflict, row change.Row, deleted bool) change.Record {
	rec := change.Record{Op: change.OpUpdate, Table: m.Source.SourceName(), Key: pc.Key}
	if deleted {
		rec.Op = change.OpDelete
		rec.Before = change.Row(pc.Key).Clone()
		return rec
	}
	rec.After = change.Merge(change.Row(pc.Key), row)
	return rec
}

// writeDataverse writes the source's version of pc to Dataverse and
// returns the row's new ETag (empty after a delete).
func (env *conflictEnv) writeDataverse(ctx context.Context, a *adapters, m *mapping.Mapping, pc *state.ParkedConflict) (string, error) {
	src := sourceRecord(m, pc, pc.Source, pc.SourceDeleted)
	out, ok, err := env.set.Mapper(m.Source.Connection).Map(&src)
	if err != nil {
		return "", fmt.Errorf("map the source's version: %w", err)
	}
	if !ok {
		return "", errors.New("the mapping maps the source's version to no Dataverse write (filtered out, or deletes ignored); settle it by hand")
	}
	// Unconditional, with the new version reported.
	out.Meta = map[string]string{change.MetaExpectedVersion: ""}
	dst := newDataverseSink(a.client, env.cfg, env.set)
	defer dst.Close(ctx)
	batch := []change.Record{out}
	if err := dst.Write(ctx, batch); err != nil {
		return "", fmt.Errorf("write to Dataverse: %w", err)
	}
	return batch[0].Meta[change.MetaVersion], nil
}

// writeSource writes Dataverse's version of pc to the source table,
// through the connection's sink, whose writes the daemon's source skips.
func (env *conflictEnv) writeSource(ctx context.Context, a *adapters, m *mapping.Mapping, pc *state.ParkedConflict) error {
	name := m.Source.Connection
	conn := env.cfg.Connections[name]
	factory := sinkFactories[conn.Type]
	if factory == nil {
		return fmt.Errorf("connection %s: writing to %q connections is not supported", name, conn.Type)
	}
	dst, err := factory(ctx, a, name, conn)
	if err != nil {
		return fmt.Errorf("connection %s: %w", name, err)
	}
	defer dst.Close(ctx)
	rec := sourceRecord(m, pc, pc.Dataverse, pc.DataverseDeleted)
	if err := dst.Write(ctx, []change.Record{rec}); err != nil {
		return fmt.Errorf("write to connection %s: %w", name, err)
	}
	return nil
}

// changedColumns names the columns side's version of pc changed from the
// last synced values.
func changedColumns(pc *state.ParkedConflict, side conflict.Side) string {
	row, deleted := pc.Source, pc.SourceDeleted
	if side == conflict.Dataverse {
		row, deleted = pc.Dataverse, pc.DataverseDeleted
	}
	if deleted {
		return "(deleted)"
	}
	base := pc.Base
	if !pc.BaseKnown {
		base = nil
	}
	if names := conflict.Changed(base, row); len(names) > 0 {
		return strings.Join(names, ",")
	}
	return "-"
}

func parseConflictIDs(args []string) ([]uint64, error) {
	ids, err := parseIDs(args, "conflict")
	if err != nil {
		return nil, fmt.Errorf("%w (see 'dvsync conflicts list')", err)
	}
	return ids, nil
}

// printConflict prints every field of pc. Values are shown: this is the
// operator's own state file, read on purpose.
func printConflict(w io.Writer, pc *state.ParkedConflict) {
	fmt.Fprintf(w, "Conflict %d\n  Mapping:  %s\n  Key:      %s\n  Detected: %s\n",
		pc.ID, pc.Mapping, pc.Key, pc.Detected.UTC().Format(time.RFC3339Nano))
	if pc.BaseKnown {
		printVersion(w, "Last synced", pc.Base, false, time.Time{})
	} else {
		fmt.Fprintln(w, "  Last synced: never")
	}
	printVersion(w, "Source", pc.Source, pc.SourceDeleted, pc.SourceTime)
	printVersion(w, "Dataverse", pc.Dataverse, pc.DataverseDeleted, pc.DataverseTime)
	if pc.DataverseVersion != "" {
		fmt.Fprintf(w, "  Dataverse version: %s\n", pc.DataverseVersion)
	}
	fmt.Fprintln(w)
}

func printVersion(w io.Writer, title string, row change.Row, deleted bool, at time.Time) {
	when := ""
	if !at.IsZero() {
		when = " (changed " + at.UTC().Format(time.RFC3339Nano) + ")"
	}
	if deleted {
		fmt.Fprintf(w, "  %s: deleted%s\n", title, when)
		return
	}
	fmt.Fprintf(w, "  %s:%s\n", title, when)
	for _, c := range row {
		fmt.Fprintf(w, "    %s = %s\n", c.Name, c.Value)
	}
}
