package benchenv

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/dvsync/dvsync/odataclient"
)

// account is a row as the emulator returns it.
type account struct {
	Number    string  `json:"accountnumber"`
	Name      string  `json:"name"`
	Employees int64   `json:"numberofemployees"`
	Credit    float64 `json:"creditlimit"`
}

// fingerprint renders the mapped values of one row the same way from
// either side.
func fingerprint(name string, employees int64, credit float64) string {
	return name + "\x00" + strconv.FormatInt(employees, 10) + "\x00" + strconv.FormatFloat(credit, 'f', 2, 64)
}

// Compare checks that the emulator's accounts equal Table: the same keys,
// each once, with the same values. A benchmark whose target differs from
// its source measured a lossy run, and fails. It returns the number of
// rows compared.
func Compare(ctx context.Context, pg *Postgres, em *Emulator) (int, error) {
	want, err := tableRows(ctx, pg)
	if err != nil {
		return 0, err
	}
	return compare(ctx, want, em)
}

// CompareGenerated checks that the emulator's accounts are exactly the
// rows 1 … n with the values Postgres.Insert gives them (and the Kafka
// scenario's messages carry).
func CompareGenerated(ctx context.Context, n int, em *Emulator) (int, error) {
	want := make(map[string]string, n)
	for i := int64(1); i <= int64(n); i++ {
		want[strconv.FormatInt(i, 10)] = fingerprint("Customer "+strconv.FormatInt(i, 10), i%5000, float64(i%100000)+0.25)
	}
	return compare(ctx, want, em)
}

// tableRows reads Table's rows as fingerprints by key.
func tableRows(ctx context.Context, pg *Postgres) (map[string]string, error) {
	want := map[string]string{}
	rows, err := pg.Conn.Query(ctx, "SELECT id, name, employees, credit::float8 FROM "+Table)
	if err != nil {
		return nil, fmt.Errorf("compare: read source: %w", err)
	}
	for rows.Next() {
		var (
			id, employees int64
			name          string
			credit        float64
		)
		if err := rows.Scan(&id, &name, &employees, &credit); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compare: read source: %w", err)
		}
		want[strconv.FormatInt(id, 10)] = fingerprint(name, employees, credit)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compare: read source: %w", err)
	}
	return want, nil
}

// compare checks the emulator's accounts against want, which it empties.
func compare(ctx context.Context, want map[string]string, em *Emulator) (int, error) {

	client, err := em.Client()
	if err != nil {
		return 0, err
	}
	defer client.CloseIdleConnections()
	seen, wrong := 0, 0
	var firstWrong string
	page, err := client.List(ctx, EntitySet, odataclient.Query{
		Select: []string{"accountnumber", "name", "numberofemployees", "creditlimit"}, MaxPageSize: 5000,
	})
	for ; err == nil; page, err = client.Next(ctx, page) {
		for _, raw := range page.Rows {
			var a account
			if err := json.Unmarshal(raw, &a); err != nil {
				return 0, fmt.Errorf("compare: account: %w", err)
			}
			fp, ok := want[a.Number]
			switch {
			case !ok:
				wrong++
				if firstWrong == "" {
					firstWrong = "account " + a.Number + " is not in the source, or is there twice"
				}
			case fp != fingerprint(a.Name, a.Employees, a.Credit):
				wrong++
				if firstWrong == "" {
					firstWrong = "account " + a.Number + " has other values than its source row"
				}
			}
			delete(want, a.Number)
			seen++
		}
		if page.NextLink == "" {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("compare: list accounts: %w", err)
	}
	if len(want) > 0 || wrong > 0 {
		if firstWrong == "" {
			for k := range want {
				firstWrong = "row " + k + " is missing"
				break
			}
		}
		return 0, fmt.Errorf("target differs from source: %d source rows missing, %d accounts wrong; e.g. %s", len(want), wrong, firstWrong)
	}
	return seen, nil
}
