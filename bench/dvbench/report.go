package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Figure is one measured rate or duration with its unit.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func (f Figure) String() string {
	if f.Unit == "" {
		return f.Name + " " + number(f.Value)
	}
	return f.Name + " " + number(f.Value) + " " + f.Unit
}

// Limit is what the same workload reaches without dvsync in the way,
// measured in the same run (or, for a throttled run, computed from the
// limits), and dvsync's figure as a share of it.
type Limit struct {
	Figure
	// Ratio is the dvsync figure divided by the limit.
	Ratio float64 `json:"ratio"`
}

// Result is one scenario's outcome.
type Result struct {
	// ID names the scenario stably, for comparing runs; Scenario
	// describes it.
	ID       string   `json:"id"`
	Scenario string   `json:"scenario"`
	Dvsync   Figure   `json:"dvsync"`
	Limits   []Limit  `json:"limits,omitempty"`
	Details  []Figure `json:"details,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Seconds  float64  `json:"seconds"`
	// Error is why the scenario failed (a lossy run included); empty
	// when it passed.
	Error string `json:"error,omitempty"`
}

// limit adds a limit and the dvsync figure's ratio to it.
func (r *Result) limit(name string, value float64, unit string) {
	ratio := 0.0
	if value > 0 {
		ratio = r.Dvsync.Value / value
	}
	r.Limits = append(r.Limits, Limit{Figure: Figure{Name: name, Value: value, Unit: unit}, Ratio: ratio})
}

func (r *Result) detail(name string, value float64, unit string) {
	r.Details = append(r.Details, Figure{Name: name, Value: value, Unit: unit})
}

// Report is the whole run, as written to the -json file.
type Report struct {
	Commit     string `json:"commit"`
	Started    string `json:"started"`
	GoVersion  string `json:"go_version"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Quick      bool   `json:"quick"`
	// Sizes are the size flags' values, by flag name.
	Sizes   map[string]string `json:"sizes"`
	Results []Result          `json:"results"`
}

// failed reports whether any scenario failed.
func (r *Report) failed() bool {
	for _, res := range r.Results {
		if res.Error != "" {
			return true
		}
	}
	return false
}

// printTable writes one line per dvsync figure and limit, then each
// scenario's details.
func (r *Report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\tdvsync\tlimit (same run)\tratio\t")
	for _, res := range r.Results {
		if res.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\n", res.Scenario)
			continue
		}
		if len(res.Limits) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\n", res.Scenario, res.Dvsync)
		}
		for _, l := range res.Limits {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t\n", res.Scenario, res.Dvsync, l.Figure, 100*l.Ratio)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, res := range r.Results {
		fmt.Fprintf(w, "%s (%.1f s):\n", res.Scenario, res.Seconds)
		if res.Error != "" {
			fmt.Fprintf(w, "  FAILED: %s\n", res.Error)
		}
		if len(res.Details) > 0 {
			var parts []string
			for _, d := range res.Details {
				parts = append(parts, d.String())
			}
			fmt.Fprintf(w, "  %s\n", strings.Join(parts, "; "))
		}
		for _, n := range res.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// number formats a figure with thousands separators, and to three
// significant digits when it is small.
func number(v float64) string {
	if math.Abs(v) < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
