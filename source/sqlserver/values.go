package sqlserver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
)

// decodeValue turns one driver value of a column of type typ into a
// change.Value without loss: exact numbers (decimal, numeric, money) stay
// decimal text, datetimeoffset keeps its offset, datetime2 and datetime
// are UTC instants, uniqueidentifier becomes the canonical UUID whatever
// SQL Server's mixed-endian wire order.
func decodeValue(typ string, v any) (change.Value, error) {
	if v == nil {
		return change.Null(), nil
	}
	switch typ {
	case "BIGINT", "INT", "SMALLINT", "TINYINT":
		if n, ok := v.(int64); ok {
			return change.Int(n), nil
		}
	case "BIT":
		if b, ok := v.(bool); ok {
			return change.Bool(b), nil
		}
	case "FLOAT", "REAL":
		switch f := v.(type) {
		case float64:
			return change.Float(f), nil
		case float32:
			// The shortest decimal form of the float32 reads back as the
			// same float32, where float64(f) would add binary noise.
			d, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
			return change.Float(d), nil
		}
	case "DECIMAL", "NUMERIC", "MONEY", "SMALLMONEY":
		var s string
		switch d := v.(type) {
		case []byte:
			s = string(d)
		case string:
			s = d
		}
		if s != "" {
			return change.Decimal(s)
		}
	case "DATE":
		if t, ok := v.(time.Time); ok {
			return change.Date(t), nil
		}
	case "DATETIME", "DATETIME2", "SMALLDATETIME":
		if t, ok := v.(time.Time); ok {
			// These types have no zone: SQL Server convention, and the
			// driver's, is to read them as UTC.
			y, mo, d := t.Date()
			return change.Timestamp(time.Date(y, mo, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)), nil
		}
	case "DATETIMEOFFSET":
		if t, ok := v.(time.Time); ok {
			return change.Timestamp(t), nil
		}
	case "TIME":
		if t, ok := v.(time.Time); ok {
			return change.Text(strings.TrimSuffix(strings.TrimRight(t.Format("15:04:05.0000000"), "0"), ".")), nil
		}
	case "UNIQUEIDENTIFIER":
		if b, ok := v.([]byte); ok && len(b) == 16 {
			return change.UUID(guidFromWire(b)), nil
		}
	case "VARBINARY", "BINARY", "IMAGE", "TIMESTAMP", "ROWVERSION":
		if b, ok := v.([]byte); ok {
			return change.Bytes(b), nil
		}
	case "NVARCHAR", "VARCHAR", "NCHAR", "CHAR", "NTEXT", "TEXT", "XML", "SYSNAME":
		switch s := v.(type) {
		case string:
			return change.Text(s), nil
		case []byte:
			return change.Text(string(s)), nil
		}
	default:
		return change.Value{}, fmt.Errorf("unsupported column type %s", typ)
	}
	return change.Value{}, fmt.Errorf("column type %s: unexpected driver value %T", typ, v)
}

// guidFromWire converts a uniqueidentifier as SQL Server stores and sends
// it (the first three groups little-endian) to RFC 4122 byte order.
func guidFromWire(b []byte) [16]byte {
	var u [16]byte
	u[0], u[1], u[2], u[3] = b[3], b[2], b[1], b[0]
	u[4], u[5] = b[5], b[4]
	u[6], u[7] = b[7], b[6]
	copy(u[8:], b[8:16])
	return u
}

// paramValue turns a key value back into a query parameter of the type
// it was read from, for keyset paging and key lookups.
func paramValue(v change.Value) any {
	switch v.Kind() {
	case change.KindInt:
		return v.Int()
	case change.KindText, change.KindJSON:
		return v.String()
	case change.KindDecimal:
		return v.Decimal()
	case change.KindBool:
		return v.Bool()
	case change.KindFloat:
		return v.Float()
	case change.KindTimestamp:
		return v.Time()
	case change.KindDate:
		return civil.DateOf(v.Time())
	case change.KindUUID:
		return mssql.UniqueIdentifier(v.UUID())
	case change.KindBytes:
		return v.Bytes()
	}
	return nil
}
