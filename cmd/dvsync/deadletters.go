package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/state"
)

// deadLetterOpts are the flags every deadletters subcommand shares.
type deadLetterOpts struct {
	config   string
	pipeline string
}

// open loads the config file and opens its state store, which fails while
// a daemon holds it.
func (o *deadLetterOpts) open(ctx context.Context) (*config.Config, state.Store, error) {
	cfg, err := config.Load(o.config)
	if err != nil {
		return nil, nil, err
	}
	st, err := openState(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

func newDeadLettersCmd() *cobra.Command {
	var o deadLetterOpts
	cmd := &cobra.Command{
		Use:   "deadletters list|show|retry|drop",
		Short: "Inspect, re-drive or discard records that could not be delivered",
		Long: `A record that cannot be mapped, or that Dataverse refuses for a permanent
reason, is kept in the state file as a dead letter, with the reason, and the
pipeline carries on. These commands work on the state file named by the
config, which the running daemon holds locked: stop the daemon first.

Typical use: 'list' to see what failed, 'show ID' for the reason and the
record, fix the mapping, then 'retry ID' (or 'retry --all'): the stored source
record is mapped again with the current mapping files and written to Dataverse,
and removed once written. 'drop' discards letters that should not be delivered.

A pipeline is named after its source connection.`,
	}
	cmd.PersistentFlags().StringVarP(&o.config, "config", "c", "dvsync.yaml", "daemon config file")
	cmd.PersistentFlags().StringVarP(&o.pipeline, "pipeline", "p", "", "only this pipeline (default: every connection in the config)")
	cmd.AddCommand(newDLListCmd(&o), newDLShowCmd(&o), newDLRetryCmd(&o), newDLDropCmd(&o))
	return cmd
}

func newDLListCmd(o *deadLetterOpts) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, st, err := o.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPIPELINE\tTIME\tSTAGE\tRECORD\tREASON")
			for _, p := range o.pipelines(cfg) {
				letters, err := st.DeadLetters(cmd.Context(), p, limit)
				if err != nil {
					return err
				}
				for _, dl := range letters {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", dl.ID, dl.Pipeline, dl.Time.UTC().Format(time.RFC3339),
						dl.Stage, describe(&dl), firstLine(dl.Reason))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "at most this many per pipeline (0: all)")
	return cmd
}

func newDLShowCmd(o *deadLetterOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID...",
		Short: "Print dead letters in full: reason, source records and mapped record",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args, "dead letter")
			if err != nil {
				return err
			}
			cfg, st, err := o.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			for _, id := range ids {
				dl, err := o.find(cmd.Context(), cfg, st, id)
				if err != nil {
					return err
				}
				printLetter(cmd.OutOrStdout(), &dl)
			}
			return nil
		},
	}
}

func newDLRetryCmd(o *deadLetterOpts) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "retry ID...|--all",
		Short: "Map dead letters again with the current mappings and write them to Dataverse",
		Long: `retry maps each letter's source records with the mapping files as they are
now, writes the result to Dataverse, and removes the letter once it is
written. A letter that fails again stays, and the reason is printed.

The row is written as it was when the record failed. If later changes to the
same row were delivered since, 'show' the letter first: retrying writes the
older values over them.

Exit status: 0 when every letter was delivered, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := idsOrAll(args, all)
			if err != nil {
				return err
			}
			cfg, set, err := loadAll(o.config)
			if err != nil {
				return err
			}
			st, err := openState(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			client, err := newDataverseClient(cfg)
			if err != nil {
				return err
			}
			sinks := map[string]sink.Sink{}
			defer func() {
				for _, s := range sinks {
					_ = s.Close(context.WithoutCancel(cmd.Context()))
				}
			}()
			a := &adapters{cfg: cfg, set: set, client: client, store: st}
			// sinkOf is where a letter's records go: Dataverse, or, for a
			// pipeline of Dataverse changes, its connection.
			sinkOf := func(pipeline string) (sink.Sink, error) {
				if s, ok := sinks[pipeline]; ok {
					return s, nil
				}
				conn, back := strings.CutPrefix(pipeline, reversePrefix)
				if !back {
					sinks[pipeline] = newDataverseSink(client, cfg, set)
					return sinks[pipeline], nil
				}
				c, ok := cfg.Connections[conn]
				if !ok || sinkFactories[c.Type] == nil {
					return nil, fmt.Errorf("pipeline %s: connection %s is not configured to receive Dataverse changes", pipeline, conn)
				}
				s, err := sinkFactories[c.Type](cmd.Context(), a, conn, c)
				if err != nil {
					return nil, err
				}
				sinks[pipeline] = a.reverseSink(pipeline, s)
				return s, nil
			}

			targets, err := o.targets(cmd.Context(), cfg, st, ids)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, dl := range targets {
				dst, err := sinkOf(dl.Pipeline)
				if err != nil {
					return err
				}
				n, err := engine.RetryDeadLetter(cmd.Context(), st, mapperOf(a, set, dl.Pipeline), dst, dl.Pipeline, dl.ID)
				if err != nil {
					failed++
					fmt.Fprintf(out, "%d: failed again: %v\n", dl.ID, err)
					continue
				}
				fmt.Fprintf(out, "%d: delivered (%d record(s) written)\n", dl.ID, n)
			}
			fmt.Fprintf(out, "%d delivered, %d failed\n", len(targets)-failed, failed)
			if failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter (of --pipeline, if given)")
	return cmd
}

func newDLDropCmd(o *deadLetterOpts) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "drop ID...|--all",
		Short: "Discard dead letters without delivering them",
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := idsOrAll(args, all)
			if err != nil {
				return err
			}
			cfg, st, err := o.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			targets, err := o.targets(cmd.Context(), cfg, st, ids)
			if err != nil {
				return err
			}
			for _, dl := range targets {
				if err := st.DeleteDeadLetter(cmd.Context(), dl.Pipeline, dl.ID); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d dropped\n", len(targets))
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter (of --pipeline, if given)")
	return cmd
}

// pipelines returns the pipelines to look in: --pipeline, or every
// connection of the config, sorted.
func (o *deadLetterOpts) pipelines(cfg *config.Config) []string {
	if o.pipeline != "" {
		return []string{o.pipeline}
	}
	names := make([]string, 0, len(cfg.Connections))
	for name := range cfg.Connections {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// find returns dead letter id from whichever pipeline holds it.
func (o *deadLetterOpts) find(ctx context.Context, cfg *config.Config, st state.Store, id uint64) (state.DeadLetter, error) {
	for _, p := range o.pipelines(cfg) {
		dl, err := st.DeadLetter(ctx, p, id)
		if err == nil {
			return dl, nil
		}
		if !errors.Is(err, state.ErrNotFound) {
			return state.DeadLetter{}, err
		}
	}
	return state.DeadLetter{}, fmt.Errorf("no dead letter %d (in pipelines %s)", id, strings.Join(o.pipelines(cfg), ", "))
}

// targets returns the letters with the given ids, or every letter when
// ids is nil.
func (o *deadLetterOpts) targets(ctx context.Context, cfg *config.Config, st state.Store, ids []uint64) ([]state.DeadLetter, error) {
	var out []state.DeadLetter
	if ids == nil {
		for _, p := range o.pipelines(cfg) {
			letters, err := st.DeadLetters(ctx, p, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, letters...)
		}
		return out, nil
	}
	for _, id := range ids {
		dl, err := o.find(ctx, cfg, st, id)
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, nil
}

// mapperOf returns the pipeline's mapper. A pipeline whose connection no
// mapping uses any more maps nothing, so its letters are retried as
// skipped: delivered by not being written.
func mapperOf(a *adapters, set *mapping.Set, pipeline string) engine.Mapper {
	if set.Mapper(strings.TrimPrefix(pipeline, reversePrefix)) != nil {
		return a.mapper(set, pipeline)
	}
	return engine.MapperFunc(func(*change.Record) (change.Record, bool, error) { return change.Record{}, false, nil })
}

func idsOrAll(args []string, all bool) ([]uint64, error) {
	switch {
	case all && len(args) > 0:
		return nil, errors.New("give dead letter IDs or --all, not both")
	case all:
		return nil, nil
	case len(args) == 0:
		return nil, errors.New("give dead letter IDs (see 'dvsync deadletters list') or --all")
	}
	return parseIDs(args, "dead letter")
}

// parseIDs reads the IDs an operator gave; what names the kind of thing
// they identify, for the error.
func parseIDs(args []string, what string) ([]uint64, error) {
	ids := make([]uint64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q is not a %s ID (a positive number)", a, what)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// describe names a letter's record without its values: source table,
// operation and key.
func describe(dl *state.DeadLetter) string {
	r := &dl.Record
	if len(dl.Sources) > 0 {
		r = &dl.Sources[0]
	}
	return fmt.Sprintf("%s %s %s", r.Table, r.Op, r.Key)
}

// firstLine keeps list's rows one line each; 'show' prints the rest.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// printLetter prints every field of dl. Values are shown: this is the
// operator's own state file, read on purpose.
func printLetter(w io.Writer, dl *state.DeadLetter) {
	fmt.Fprintf(w, "Dead letter %d\n  Pipeline: %s\n  Time:     %s\n  Stage:    %s\n  Reason:   %s\n",
		dl.ID, dl.Pipeline, dl.Time.UTC().Format(time.RFC3339Nano), dl.Stage, dl.Reason)
	if dl.Stage == "map" {
		printRecord(w, "Source record", &dl.Record)
	} else {
		for i := range dl.Sources {
			printRecord(w, fmt.Sprintf("Source record %d of %d", i+1, len(dl.Sources)), &dl.Sources[i])
		}
		printRecord(w, "Mapped record (as written)", &dl.Record)
	}
	fmt.Fprintln(w)
}

func printRecord(w io.Writer, title string, r *change.Record) {
	fmt.Fprintf(w, "  %s: %s %s key %s\n", title, r.Op, r.Table, r.Key)
	if len(r.Position) > 0 {
		fmt.Fprintf(w, "    position: %x\n", []byte(r.Position))
	}
	if !r.CommitTime.IsZero() {
		fmt.Fprintf(w, "    committed: %s\n", r.CommitTime.UTC().Format(time.RFC3339Nano))
	}
	for _, c := range r.After {
		fmt.Fprintf(w, "    %s = %s\n", c.Name, c.Value)
	}
}
