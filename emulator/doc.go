// Package emulator is an in-memory server for the Dataverse Web API (OData
// v4), written from Microsoft's documentation so that dvsync, its tests and a
// user's own CI can run without a cloud tenant.
//
// A Schema declares the tables; New returns a Server, an http.Handler for
// /api/data/v9.2/ (v9.0 and v9.1 behave the same):
//
//	schema, err := emulator.LoadSchema("schema.yaml")
//	srv, err := emulator.New(schema, emulator.Options{Token: token})
//	http.ListenAndServe("127.0.0.1:8080", srv)
//
// # What it serves
//
//   - Rows: POST to create; GET, PATCH and DELETE by primary key
//     (accounts(<guid>), accounts(accountid=<guid>)) or alternate key
//     (accounts(accountnumber='A1'), t(k1='a',k2=5)). PATCH is an upsert;
//     If-Match: * makes it update-only, If-None-Match: * create-only, and
//     If-Match: W/"<version>" makes updates and deletes conditional. GET with
//     If-None-Match: W/"<version>" answers 304 when unchanged.
//   - Lookups: set with "<nav>@odata.bind" to a record URI (by id or
//     alternate key), cleared with null, read as _<name>_value, with the
//     lookuplogicalname and associatednavigationproperty annotations on
//     request.
//   - Queries: $select, $filter (eq ne gt ge lt le, and or not, parentheses,
//     contains/startswith/endswith, null, parameter aliases), $orderby, $top,
//     $count and paging with Prefer: odata.maxpagesize and @odata.nextLink.
//   - Metadata: EntityDefinitions (by LogicalName or MetadataId, as a
//     collection with $filter), their Keys and Attributes, $expand of those;
//     and the WhoAmI function.
//
// # Fidelity
//
// Behaviour follows the documented service, not any one client: status
// codes, headers (OData-Version, OData-EntityId, ETag, Preference-Applied),
// error bodies {"error":{"code":"0x…","message":…}} with Dataverse's codes and
// wording, case-insensitive string comparison and keys, values validated and
// rounded per column type, the empty string stored as null, whole-second UTC
// timestamps, and versionnumber drawn from one organisation-wide counter so
// that ETags change on every write.
//
// Not served yet, and answered with 501 rather than ignored: $batch, the bulk
// messages (CreateMultiple and friends), change tracking
// (Prefer: odata.track-changes), $expand on rows, property and navigation
// paths, $metadata. Not modelled: relationship cascades on delete (a deleted
// row's referrers keep their lookup value), duplicate detection rules,
// formatted-value annotations, accent-insensitive collation, service
// protection limits.
package emulator
