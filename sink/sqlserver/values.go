package sqlserver

import (
	"fmt"

	"github.com/cockroachdb/apd/v3"
	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
)

// param converts v to the parameter written to a column of type ct. The
// statement CASTs every parameter to the column's type, so the parameter
// only has to carry the value exactly:
//
//   - decimals travel as plain decimal text (exponents expanded), which
//     the CAST converts without float rounding;
//   - an instant written to datetime2, datetime or smalldatetime, which
//     have no zone, is written in UTC, as dvsync's source reads them;
//     to datetimeoffset it keeps its offset; to date it keeps its UTC
//     date;
//   - UUIDs go as uniqueidentifier, whose wire byte order the driver
//     handles.
func param(ct columnType, v change.Value) (any, error) {
	switch v.Kind() {
	case change.KindNull:
		return nil, nil
	case change.KindText, change.KindJSON:
		return v.String(), nil
	case change.KindInt:
		return v.Int(), nil
	case change.KindFloat:
		return v.Float(), nil
	case change.KindBool:
		return v.Bool(), nil
	case change.KindDecimal:
		d, _, err := apd.NewFromString(v.Decimal())
		if err != nil {
			return nil, fmt.Errorf("decimal %q: %w", v.Decimal(), err)
		}
		return d.Text('f'), nil
	case change.KindTimestamp:
		t := v.Time()
		switch ct.base {
		case "datetime2", "datetime", "smalldatetime":
			return civil.DateTimeOf(t.UTC()), nil
		case "date":
			return civil.DateOf(t.UTC()), nil
		}
		return t, nil
	case change.KindDate:
		return civil.DateOf(v.Time()), nil
	case change.KindUUID:
		return mssql.UniqueIdentifier(v.UUID()), nil
	case change.KindBytes:
		return v.Bytes(), nil
	}
	return nil, fmt.Errorf("a %s value cannot be written", v.Kind())
}
