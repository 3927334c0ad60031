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
//     contains/startswith/endswith, null, parameter aliases,
//     Microsoft.Dynamics.CRM.ContainValues for multi-select choices),
//     $orderby, $top, $count, <set>/$count as text, and paging with Prefer: odata.maxpagesize and @odata.nextLink.
//   - $expand of single-valued navigation properties (lookups) with a nested
//     $select, on single rows and on lists.
//   - $batch: multipart/mixed requests and responses, change sets applied
//     atomically (a failure rolls back the change set's earlier
//     operations), Content-ID and $n references, Prefer:
//     odata.continue-on-error and the limit of 1000 requests.
//   - Bulk messages: CreateMultiple, UpdateMultiple and UpsertMultiple on
//     every table, all or nothing; DeleteMultiple on elastic tables.
//   - Change tracking: Prefer: odata.track-changes returns an
//     @odata.deltaLink; the link returns rows created or changed since and
//     deletions as $deletedEntity entries, paged like any query.
//   - Metadata: $metadata (CSDL), EntityDefinitions (by LogicalName or
//     MetadataId, as a collection with $filter), their Keys and Attributes
//     (with MaxLength, Precision, MinValue/MaxValue and RequiredLevel), the
//     Attributes/Microsoft.Dynamics.CRM.<Type>AttributeMetadata cast with
//     $expand=OptionSet, $expand of those; and the WhoAmI function.
//   - Identity: a static bearer token, and an OAuth 2.0 client-credentials
//     token endpoint (/{tenant}/oauth2/v2.0/token) issuing expiring tokens
//     for configured applications. Each caller is a systemusers row whose
//     id is written to _createdby_value and _modifiedby_value.
//   - Service protection: per-user limits on requests and execution time
//     per sliding window and on concurrent requests, answered with 429,
//     Retry-After and Dataverse's error codes; x-ms-ratelimit-* and
//     x-ms-dop-hint headers.
//   - Webhooks: endpoints and steps from the schema file (Webhook) get a
//     RemoteExecutionContext after each matching create, update or delete,
//     with the endpoint's auth, Dataverse's headers, timeout and retry rule;
//     synchronous steps fail the write when the receiver fails.
//     Asynchronous runs wait in a queue without limit (unless
//     Options.WebhookQueueLimit sets one), as Dataverse's asynchronous
//     service never drops them for load. Close or Shutdown stops the
//     delivery workers; WebhookFailures lists failed runs.
//   - Test hooks outside /api/data: /_emulator/faults injects latency,
//     5xx answers, 429 storms and dropped connections; /_emulator/reset
//     deletes every row.
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
// Not served, and answered with 501 rather than ignored: property and
// collection-valued navigation paths, nested options in $expand other than
// $select, $apply, $search, FetchXML, deep insert. Not modelled:
// relationship cascades on delete (a deleted row's referrers keep their
// lookup value), duplicate detection rules, formatted values other than a
// lookup's name, accent-insensitive collation, webhook registration through
// the Web API, security roles.
// docs/emulator.md lists every difference known.
package emulator
