package mapping

// LineOf returns the line of the mapping's file on which the field at path
// was written, such as "dataverse.table" or "columns[2].target", or the
// mapping's first line when the field was not written or the mapping was
// not parsed from a file. Tools that check a mapping against something
// outside it (live metadata, a source catalog) use it to point at the line
// to fix.
func (m *Mapping) LineOf(path string) int { return m.lineOf(path) }
