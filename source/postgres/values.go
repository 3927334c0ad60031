package postgres

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dvsync/dvsync/change"
)

// decoder turns pgoutput's text-format column data into change.Values.
// The text forms it parses depend on session settings, which the
// replication connection pins (see sessionParams). Not safe for
// concurrent use: it caches scan plans.
type decoder struct {
	types *pgtype.Map
}

func newDecoder() *decoder { return &decoder{types: pgtype.NewMap()} }

// sessionParams fix the text output of the replication session, so that
// values decode the same whatever the server's or role's defaults are.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"bytea_output":       "hex",
	"extra_float_digits": "1", // shortest text that reads back exactly
}

// value decodes one column of a tuple.
func (d *decoder) value(typ uint32, col *pglogrepl.TupleDataColumn) (change.Value, error) {
	switch col.DataType {
	case pglogrepl.TupleDataTypeNull:
		return change.Null(), nil
	case pglogrepl.TupleDataTypeToast:
		return change.Unchanged(), nil
	case pglogrepl.TupleDataTypeText:
		return d.text(typ, col.Data)
	}
	// Binary data is only sent when asked for with the binary option.
	return change.Value{}, fmt.Errorf("unexpected tuple data kind %q", col.DataType)
}

// text decodes a value from its text form by type OID. Types without a
// better match keep their text form.
func (d *decoder) text(typ uint32, data []byte) (change.Value, error) {
	return d.textOf(typ, data, string(data))
}

// textOf is text with data's string given by the caller, which must equal
// string(data): text values share it, so that a caller converting a whole
// row's bytes at once pays one allocation for all of its columns.
func (d *decoder) textOf(typ uint32, data []byte, s string) (change.Value, error) {
	switch typ {
	case pgtype.BoolOID:
		switch s {
		case "t":
			return change.Bool(true), nil
		case "f":
			return change.Bool(false), nil
		}
		return change.Value{}, fmt.Errorf("bad boolean %q", s)
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return change.Value{}, err
		}
		return change.Int(n), nil
	case pgtype.Float4OID, pgtype.Float8OID:
		// Parsing a float4's shortest text as 64 bits keeps the number the
		// user wrote (1.1, not 1.100000023841858).
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return change.Value{}, err
		}
		return change.Float(f), nil
	case pgtype.NumericOID:
		switch s {
		// Not decimal numbers, but PostgreSQL's numeric has them; a float
		// is the only Value that can carry them.
		case "NaN":
			return change.Float(math.NaN()), nil
		case "Infinity":
			return change.Float(math.Inf(1)), nil
		case "-Infinity":
			return change.Float(math.Inf(-1)), nil
		}
		return change.Decimal(s)
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return change.Text(s), nil
	case pgtype.TimestamptzOID:
		var ts pgtype.Timestamptz
		if err := d.types.Scan(typ, pgtype.TextFormatCode, data, &ts); err != nil {
			return change.Value{}, err
		}
		if ts.InfinityModifier != pgtype.Finite {
			return change.Text(s), nil // ±infinity has no time.Time
		}
		return change.Timestamp(ts.Time.UTC()), nil
	case pgtype.TimestampOID:
		var ts pgtype.Timestamp
		if err := d.types.Scan(typ, pgtype.TextFormatCode, data, &ts); err != nil {
			return change.Value{}, err
		}
		if ts.InfinityModifier != pgtype.Finite {
			return change.Text(s), nil
		}
		return change.Timestamp(ts.Time.UTC()), nil
	case pgtype.DateOID:
		var dt pgtype.Date
		if err := d.types.Scan(typ, pgtype.TextFormatCode, data, &dt); err != nil {
			return change.Value{}, err
		}
		if dt.InfinityModifier != pgtype.Finite {
			return change.Text(s), nil
		}
		return change.Date(dt.Time), nil
	case pgtype.UUIDOID:
		return change.ParseUUID(s)
	case pgtype.ByteaOID:
		hexDigits, ok := bytes.CutPrefix(data, []byte(`\x`))
		if !ok {
			return change.Value{}, fmt.Errorf("bytea not in hex format")
		}
		b := make([]byte, hex.DecodedLen(len(hexDigits)))
		if _, err := hex.Decode(b, hexDigits); err != nil {
			return change.Value{}, err
		}
		return change.Bytes(b), nil
	case pgtype.JSONOID, pgtype.JSONBOID:
		return change.JSON(data), nil
	}
	return change.Text(s), nil
}
