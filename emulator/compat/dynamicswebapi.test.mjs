// Drives a running dvsync Dataverse emulator through DynamicsWebApi, a
// widely used third-party Dataverse client, to show that what a real client
// sends is understood and what the emulator answers is what the client
// expects from Dataverse. The emulator serves schema.yaml; its root URL and
// bearer token come from DVSYNC_EMULATOR_URL and DVSYNC_EMULATOR_TOKEN
// (compat_test.go starts it and runs this file with `node --test`).
//
// Every test makes its own rows with values no other test uses, so the tests
// do not depend on each other's order or leftovers. They run one at a time
// (node:test's default within a file), which the change-tracking test needs:
// no other test writes between its delta link and the follow-up.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import { DynamicsWebApi } from "dynamics-web-api";

const rootURL = process.env.DVSYNC_EMULATOR_URL;
const token = process.env.DVSYNC_EMULATOR_TOKEN;
if (!rootURL || !token) {
  throw new Error("DVSYNC_EMULATOR_URL and DVSYNC_EMULATOR_TOKEN must be set");
}

// newClient returns a client configured as an application would be for a
// real environment: the organisation URL and a token callback. The emulator
// takes one static token, so the callback hands that out every time.
function newClient(config = {}) {
  return new DynamicsWebApi({
    serverUrl: rootURL,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    ...config,
  });
}

const api = newClient();

// GUID_RE matches the lower-case hyphenated GUIDs Dataverse writes.
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// ETAG_RE matches Dataverse's weak row-version ETags, W/"<number>".
const ETAG_RE = /^W\/"\d+"$/;

// unique returns a short string no other test uses, for key columns.
function unique(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

// rejectsWith asserts that promise fails with a DynamicsWebApi request error
// carrying the given HTTP status (and code, when given), and returns it.
async function rejectsWith(promise, status, code) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  assert.equal(caught.status, status, `status of ${JSON.stringify(caught)}`);
  if (code !== undefined) {
    assert.equal(caught.code, code, `code of ${JSON.stringify(caught)}`);
  }
  assert.equal(typeof caught.message, "string");
  assert.ok(caught.message.length > 0, "error message is empty");
  return caught;
}

describe("create", () => {
  test("answers with the new row's id", async () => {
    const id = await api.create({
      collection: "accounts",
      data: { name: "Contoso", accountnumber: unique("C") },
    });
    assert.match(id, GUID_RE);

    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.accountid, id);
    assert.equal(row.name, "Contoso");
  });

  test("with return=representation answers with the row", async () => {
    const number = unique("R");
    const row = await api.create({
      collection: "accounts",
      data: { name: "Fabrikam", accountnumber: number, numberofemployees: 42, creditonhold: true },
      returnRepresentation: true,
      select: ["name", "accountnumber", "numberofemployees", "creditonhold", "createdon"],
    });
    assert.match(row.accountid, GUID_RE);
    assert.match(row["@odata.etag"], ETAG_RE);
    assert.match(row.oDataContext, /\$metadata#accounts\(.*\)\/\$entity$/);
    assert.equal(row.name, "Fabrikam");
    assert.equal(row.accountnumber, number);
    assert.equal(row.numberofemployees, 42);
    assert.equal(row.creditonhold, true);
    // DynamicsWebApi turns ISO 8601 strings into Dates.
    assert.ok(row.createdon instanceof Date, `createdon is ${row.createdon}`);
  });

  test("binds a lookup by id and by alternate key", async () => {
    const number = unique("P");
    const accountId = await api.create({ collection: "accounts", data: { name: "Parent", accountnumber: number } });

    const byId = await api.create({
      collection: "contacts",
      data: { lastname: "ById", "parentcustomerid@odata.bind": `accounts(${accountId})` },
      returnRepresentation: true,
      select: ["lastname", "_parentcustomerid_value"],
    });
    assert.equal(byId._parentcustomerid_value, accountId);

    const byKey = await api.create({
      collection: "contacts",
      data: { lastname: "ByKey", "parentcustomerid@odata.bind": `accounts(accountnumber='${number}')` },
    });
    const row = await api.retrieve({
      collection: "contacts",
      key: byKey,
      select: ["_parentcustomerid_value"],
      includeAnnotations: "*",
    });
    assert.equal(row._parentcustomerid_value, accountId);
    // The client maps the lookuplogicalname annotation to _LogicalName.
    assert.equal(row._parentcustomerid_value_LogicalName, "account");
  });
});

describe("retrieve", () => {
  test("$select returns the selected columns, the key and the ETag", async () => {
    const id = await api.create({
      collection: "accounts",
      data: { name: "Selected", accountnumber: unique("S"), numberofemployees: 7 },
    });
    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.name, "Selected");
    assert.equal(row.accountid, id);
    assert.match(row["@odata.etag"], ETAG_RE);
    assert.equal(row.numberofemployees, undefined, "a column outside $select came back");
    assert.match(row.oDataContext, /\$metadata#accounts\(name\)\/\$entity$/);
  });

  test("by alternate key", async () => {
    const number = unique("K");
    const id = await api.create({ collection: "accounts", data: { name: "Keyed", accountnumber: number } });
    const row = await api.retrieve({
      collection: "accounts",
      key: `accountnumber='${number}'`,
      select: ["name"],
    });
    assert.equal(row.accountid, id);
    assert.equal(row.name, "Keyed");
  });

  test("with If-None-Match of the current ETag is 304 until the row changes", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Cached", accountnumber: unique("N") } });
    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    const request = { collection: "accounts", key: id, select: ["name"], ifnonematch: row["@odata.etag"] };

    // A 304 has no body; the client answers it with nothing.
    assert.equal(await api.retrieve(request), undefined);

    await api.update({ collection: "accounts", key: id, data: { name: "Changed" } });
    const changed = await api.retrieve(request);
    assert.equal(changed.name, "Changed");
    assert.notEqual(changed["@odata.etag"], row["@odata.etag"]);
  });

  test("$expand of a lookup with its own $select", async () => {
    const accountId = await api.create({
      collection: "accounts",
      data: { name: "Expanded parent", accountnumber: unique("X") },
    });
    const contactId = await api.create({
      collection: "contacts",
      data: { firstname: "Ana", lastname: "Silva", "parentcustomerid@odata.bind": `accounts(${accountId})` },
    });
    const row = await api.retrieve({
      collection: "contacts",
      key: contactId,
      select: ["lastname"],
      expand: [{ property: "parentcustomerid", select: ["name"] }],
    });
    assert.equal(row.contactid, contactId);
    assert.equal(row.lastname, "Silva");
    assert.match(row.oDataContext, /\$metadata#contacts\(lastname,parentcustomerid\(name\)\)\/\$entity$/);
    const parent = row.parentcustomerid;
    assert.equal(parent.accountid, accountId);
    assert.equal(parent.name, "Expanded parent");
    assert.match(parent["@odata.etag"], ETAG_RE);
    assert.equal(parent.accountnumber, undefined, "a column outside the nested $select came back");

    const page = await api.retrieveMultiple({
      collection: "contacts",
      select: ["lastname"],
      filter: `_parentcustomerid_value eq ${accountId}`,
      expand: [{ property: "parentcustomerid", select: ["name", "accountnumber"] }],
    });
    assert.equal(page.value.length, 1);
    assert.equal(page.value[0].parentcustomerid.name, "Expanded parent");

    // A row whose lookup is empty expands to null.
    const orphan = await api.create({ collection: "contacts", data: { lastname: "Orphan" } });
    const lone = await api.retrieve({
      collection: "contacts",
      key: orphan,
      select: ["lastname"],
      expand: [{ property: "parentcustomerid", select: ["name"] }],
    });
    assert.equal(lone.parentcustomerid, null);
  });

  test("a missing row is 404", async () => {
    await rejectsWith(api.retrieve({ collection: "accounts", key: randomUUID() }), 404);
  });
});

describe("update", () => {
  test("changes the row and moves its ETag", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Before", accountnumber: unique("U") } });
    const before = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });

    const ok = await api.update({ collection: "accounts", key: id, data: { name: "After" } });
    assert.equal(ok, true);

    const after = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(after.name, "After");
    assert.notEqual(after["@odata.etag"], before["@odata.etag"]);
  });

  test("with return=representation answers with the updated row", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Rep", accountnumber: unique("UR") } });
    const row = await api.update({
      collection: "accounts",
      key: id,
      data: { numberofemployees: 12 },
      returnRepresentation: true,
      select: ["name", "numberofemployees"],
    });
    assert.equal(row.accountid, id);
    assert.equal(row.name, "Rep");
    assert.equal(row.numberofemployees, 12);
  });

  test("never creates: If-Match: * on a missing row is 404", async () => {
    // update() sends If-Match: * by default, which makes it update-only.
    await rejectsWith(api.update({ collection: "accounts", key: randomUUID(), data: { name: "Ghost" } }), 404);
  });

  test("clears a lookup with null", async () => {
    const parent = await api.create({ collection: "accounts", data: { name: "P", accountnumber: unique("CL") } });
    const child = await api.create({
      collection: "contacts",
      data: { lastname: "Child", "parentcustomerid@odata.bind": `accounts(${parent})` },
    });
    await api.update({ collection: "contacts", key: child, data: { "parentcustomerid@odata.bind": null } });
    const row = await api.retrieve({ collection: "contacts", key: child, select: ["_parentcustomerid_value"] });
    assert.equal(row._parentcustomerid_value, null);
  });
});

describe("conditional update with ETag", () => {
  test("applies with the current ETag and is refused with a stale one", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "V1", accountnumber: unique("E") } });
    const v1 = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });

    const applied = await api.update({
      collection: "accounts",
      key: id,
      data: { name: "V2" },
      ifmatch: v1["@odata.etag"],
    });
    assert.equal(applied, true);

    // The client reports a 412 on a conditional update as false.
    const refused = await api.update({
      collection: "accounts",
      key: id,
      data: { name: "V3" },
      ifmatch: v1["@odata.etag"],
    });
    assert.equal(refused, false);

    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.name, "V2");
  });

  test("a stale ETag is 412 with Dataverse's message", async () => {
    const strict = newClient({ propagateErrors: true });
    const id = await strict.create({ collection: "accounts", data: { name: "S1", accountnumber: unique("E") } });
    const v1 = await strict.retrieve({ collection: "accounts", key: id, select: ["name"] });
    await strict.update({ collection: "accounts", key: id, data: { name: "S2" } });
    const err = await rejectsWith(
      strict.update({ collection: "accounts", key: id, data: { name: "S3" }, ifmatch: v1["@odata.etag"] }),
      412,
    );
    assert.match(err.message, /version of the existing record doesn't match the RowVersion/);
  });
});

describe("upsert", () => {
  test("by alternate key creates, then updates the same row", async () => {
    const number = unique("UP");
    const key = `accountnumber='${number}'`;
    const created = await api.upsert({
      collection: "accounts",
      key,
      data: { name: "First", numberofemployees: 1 },
      returnRepresentation: true,
      select: ["name", "accountnumber", "numberofemployees"],
    });
    assert.match(created.accountid, GUID_RE);
    // On create the key values in the URL are copied into the row.
    assert.equal(created.accountnumber, number);
    assert.equal(created.name, "First");

    const updated = await api.upsert({
      collection: "accounts",
      key,
      data: { name: "Second" },
      returnRepresentation: true,
      select: ["name", "numberofemployees"],
    });
    assert.equal(updated.accountid, created.accountid);
    assert.equal(updated.name, "Second");
    assert.equal(updated.numberofemployees, 1, "an upsert that updates must keep the columns it did not send");

    const all = await api.retrieveMultiple({
      collection: "accounts",
      select: ["accountid"],
      filter: `accountnumber eq '${number}'`,
    });
    assert.equal(all.value.length, 1);
  });

  test("plain upsert answers with the row's id whether it created or updated", async () => {
    const key = `accountnumber='${unique("UP")}'`;
    const first = await api.upsert({ collection: "accounts", key, data: { name: "A" } });
    const second = await api.upsert({ collection: "accounts", key, data: { name: "B" } });
    assert.match(first, GUID_RE);
    assert.equal(second, first);
  });

  test("by id creates the row with that id", async () => {
    const id = randomUUID();
    const got = await api.upsert({ collection: "contacts", key: id, data: { lastname: "Chosen" } });
    assert.equal(got, id);
    const row = await api.retrieve({ collection: "contacts", key: id, select: ["lastname"] });
    assert.equal(row.lastname, "Chosen");
  });

  test("with If-None-Match: * creates but never updates", async () => {
    const key = `accountnumber='${unique("INM")}'`;
    const id = await api.upsert({ collection: "accounts", key, data: { name: "Only" }, ifnonematch: "*" });
    assert.match(id, GUID_RE);

    // The client reports the 412 of a refused create-only upsert as null.
    const second = await api.upsert({ collection: "accounts", key, data: { name: "Overwritten" }, ifnonematch: "*" });
    assert.equal(second, null);

    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.name, "Only");

    const strict = newClient({ propagateErrors: true });
    const err = await rejectsWith(
      strict.upsert({ collection: "accounts", key, data: { name: "Again" }, ifnonematch: "*" }),
      412,
    );
    assert.match(err.message, /A record with matching key values already exists/);
  });
});

describe("delete", () => {
  test("removes the row", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Doomed", accountnumber: unique("D") } });
    const ok = await api.deleteRecord({ collection: "accounts", key: id });
    assert.equal(ok, true);
    await rejectsWith(api.retrieve({ collection: "accounts", key: id }), 404);
  });

  test("by alternate key", async () => {
    const number = unique("DK");
    await api.create({ collection: "accounts", data: { name: "Doomed", accountnumber: number } });
    await api.deleteRecord({ collection: "accounts", key: `accountnumber='${number}'` });
    await rejectsWith(api.retrieve({ collection: "accounts", key: `accountnumber='${number}'` }), 404);
  });

  test("with a stale ETag is refused and keeps the row", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Kept", accountnumber: unique("DE") } });
    const v1 = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    await api.update({ collection: "accounts", key: id, data: { name: "Kept 2" } });
    const ok = await api.deleteRecord({ collection: "accounts", key: id, ifmatch: v1["@odata.etag"] });
    assert.equal(ok, false);
    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.name, "Kept 2");
  });

  test("a missing row is 404", async () => {
    await rejectsWith(api.deleteRecord({ collection: "accounts", key: randomUUID() }), 404);
  });
});

describe("retrieveMultiple", () => {
  test("$filter, $orderby and $top", async () => {
    const tag = unique("Q");
    for (const [n, staff] of [["c", 30], ["a", 10], ["d", 40], ["b", 20], ["e", 50]]) {
      await api.create({
        collection: "accounts",
        data: { name: `${tag} ${n}`, accountnumber: `${tag}-${n}`, numberofemployees: staff },
      });
    }
    const page = await api.retrieveMultiple({
      collection: "accounts",
      select: ["name", "numberofemployees"],
      filter: `startswith(name,'${tag}') and numberofemployees ge 20`,
      orderBy: ["numberofemployees desc"],
      top: 3,
    });
    assert.deepEqual(
      page.value.map((r) => [r.name, r.numberofemployees]),
      [
        [`${tag} e`, 50],
        [`${tag} d`, 40],
        [`${tag} c`, 30],
      ],
    );
    for (const r of page.value) {
      assert.match(r.accountid, GUID_RE);
      assert.match(r["@odata.etag"], ETAG_RE);
    }
    assert.equal(page.oDataNextLink, undefined);
  });

  test("string comparison ignores case, like Dataverse", async () => {
    const tag = unique("ci");
    await api.create({ collection: "accounts", data: { name: `${tag} MiXeD`, accountnumber: tag } });
    const page = await api.retrieveMultiple({
      collection: "accounts",
      select: ["name"],
      filter: `name eq '${tag.toUpperCase()} mixed'`,
    });
    assert.equal(page.value.length, 1);
  });

  test("$count", async () => {
    const tag = unique("cnt");
    for (let i = 0; i < 3; i++) {
      await api.create({ collection: "accounts", data: { name: tag, accountnumber: `${tag}-${i}` } });
    }
    const page = await api.retrieveMultiple({
      collection: "accounts",
      select: ["name"],
      filter: `name eq '${tag}'`,
      count: true,
    });
    assert.equal(page.oDataCount, 3);
    assert.equal(page.value.length, 3);
  });

  test("one page at a time with odata.maxpagesize and @odata.nextLink", async () => {
    const tag = unique("pg");
    for (let i = 0; i < 5; i++) {
      await api.create({ collection: "accounts", data: { name: tag, accountnumber: `${tag}-${i}` } });
    }
    const request = {
      collection: "accounts",
      select: ["accountnumber"],
      filter: `name eq '${tag}'`,
      orderBy: ["accountnumber"],
      maxPageSize: 2,
    };
    const first = await api.retrieveMultiple(request);
    assert.equal(first.value.length, 2);
    assert.ok(first.oDataNextLink, "no @odata.nextLink on a partial page");
    const second = await api.retrieveMultiple(request, first.oDataNextLink);
    assert.deepEqual(
      second.value.map((r) => r.accountnumber),
      [`${tag}-2`, `${tag}-3`],
    );
  });
});

describe("retrieveAll", () => {
  test("follows @odata.nextLink across pages and returns every row once", async () => {
    const tag = unique("all");
    const want = [];
    for (let i = 0; i < 11; i++) {
      const number = `${tag}-${String(i).padStart(2, "0")}`;
      want.push(number);
      await api.create({ collection: "accounts", data: { name: tag, accountnumber: number } });
    }
    // Count the pages the client fetches by watching the requests it makes.
    let requests = 0;
    const counting = newClient({
      onTokenRefresh: async () => {
        requests++;
        return token;
      },
    });
    const all = await counting.retrieveAll({
      collection: "accounts",
      select: ["accountnumber"],
      filter: `name eq '${tag}'`,
      orderBy: ["accountnumber asc"],
      maxPageSize: 4,
    });
    assert.deepEqual(
      all.value.map((r) => r.accountnumber),
      want,
    );
    assert.equal(requests, 3, "11 rows in pages of 4 take 3 requests");
  });
});

describe("change tracking", () => {
  test("the delta link returns what changed since, deletes last, then nothing", async () => {
    const kept = await api.create({ collection: "accounts", data: { name: "Tracked", accountnumber: unique("CT") } });
    const doomed = await api.create({ collection: "accounts", data: { name: "Tracked", accountnumber: unique("CT") } });
    const request = { collection: "accounts", select: ["name", "accountnumber"], trackChanges: true };
    const initial = await api.retrieveAll(request);
    assert.ok(initial.oDataDeltaLink, "no @odata.deltaLink with Prefer: odata.track-changes");
    assert.ok(initial.value.some((r) => r.accountid === kept));

    const number = unique("CT");
    const added = await api.create({ collection: "accounts", data: { name: "Added", accountnumber: number } });
    await api.update({ collection: "accounts", key: kept, data: { name: "Tracked and changed" } });
    await api.deleteRecord({ collection: "accounts", key: doomed });

    const changes = await api.retrieveMultiple(request, initial.oDataDeltaLink);
    assert.match(changes.oDataContext, /\/\$delta$/);
    assert.deepEqual(
      changes.value.map((r) => (r.reason ? ["deleted", r.id, r.reason] : ["row", r.accountid, r.name])),
      [
        ["row", added, "Added"],
        ["row", kept, "Tracked and changed"],
        ["deleted", doomed, "deleted"],
      ],
    );
    assert.match(changes.value[2].oDataContext, /\$metadata#accounts\/\$deletedEntity$/);
    assert.ok(changes.oDataDeltaLink, "no new @odata.deltaLink");

    const none = await api.retrieveMultiple(request, changes.oDataDeltaLink);
    assert.deepEqual(none.value, []);
  });
});

describe("executeBatch", () => {
  test("a change set whose second create binds to $1, then a GET outside it", async () => {
    const number = unique("B");
    const client = newClient();
    client.startBatch();
    client.create({ collection: "accounts", data: { name: "Batch parent", accountnumber: number }, contentId: "1" });
    client.create({
      collection: "contacts",
      data: { lastname: "Batch child", "parentcustomerid@odata.bind": "$1" },
    });
    client.retrieveMultiple({ collection: "accounts", select: ["name"], filter: `accountnumber eq '${number}'` });
    const results = await client.executeBatch();

    assert.equal(results.length, 3);
    const [accountId, contactId, page] = results;
    assert.match(accountId, GUID_RE);
    assert.match(contactId, GUID_RE);
    assert.deepEqual(
      page.value.map((r) => [r.accountid, r.name]),
      [[accountId, "Batch parent"]],
    );
    const child = await api.retrieve({ collection: "contacts", key: contactId, select: ["_parentcustomerid_value"] });
    assert.equal(child._parentcustomerid_value, accountId, "$1 did not stand for the account created in the change set");
  });

  test("updates and deletes in a change set", async () => {
    const id = await api.create({ collection: "accounts", data: { name: "Batched", accountnumber: unique("BU") } });
    const gone = await api.create({ collection: "accounts", data: { name: "Batched", accountnumber: unique("BD") } });
    const client = newClient();
    client.startBatch();
    client.update({ collection: "accounts", key: id, data: { numberofemployees: 5 } });
    client.upsert({ collection: "accounts", key: `accountnumber='${unique("BP")}'`, data: { name: "Upserted in batch" } });
    client.deleteRecord({ collection: "accounts", key: gone });
    const results = await client.executeBatch();
    assert.equal(results.length, 3);
    assert.equal(results[0], true);
    assert.match(results[1], GUID_RE);
    assert.equal(results[2], true);

    const row = await api.retrieve({ collection: "accounts", key: id, select: ["numberofemployees"] });
    assert.equal(row.numberofemployees, 5);
    await rejectsWith(api.retrieve({ collection: "accounts", key: gone }), 404);
  });

  test("a failed change set is rolled back as a whole", async () => {
    const taken = unique("BT");
    await api.create({ collection: "accounts", data: { name: "Taken", accountnumber: taken } });
    const fresh = unique("BF");
    const client = newClient();
    client.startBatch();
    client.create({ collection: "accounts", data: { name: "Would be new", accountnumber: fresh } });
    client.create({ collection: "accounts", data: { name: "Duplicate", accountnumber: taken } });
    const results = await client.executeBatch();

    // The change set is answered with its one error.
    assert.equal(results.length, 1);
    assert.ok(results[0] instanceof Error, `want an error, got ${JSON.stringify(results[0])}`);
    assert.equal(results[0].status, 412);
    // Inside a batch the client keeps the error body as it came.
    assert.equal(results[0].error.code, "0x80060892");
    await rejectsWith(api.retrieve({ collection: "accounts", key: `accountnumber='${fresh}'` }), 404);
  });

  test("continueOnError runs the requests after a failure", async () => {
    const taken = unique("BC");
    await api.create({ collection: "accounts", data: { name: "Taken", accountnumber: taken } });
    const client = newClient();
    client.startBatch();
    client.create({ collection: "accounts", data: { name: "Duplicate", accountnumber: taken } });
    client.retrieveMultiple({ collection: "accounts", select: ["name"], filter: `accountnumber eq '${taken}'` });
    const results = await client.executeBatch({ continueOnError: true });

    assert.equal(results.length, 2);
    assert.ok(results[0] instanceof Error, `want an error, got ${JSON.stringify(results[0])}`);
    assert.equal(results[0].status, 412);
    assert.deepEqual(
      results[1].value.map((r) => r.name),
      ["Taken"],
    );
  });
});

describe("bulk messages", () => {
  test("CreateMultiple answers with the ids in order; UpsertMultiple updates and creates by alternate key", async () => {
    const tag = unique("BLK");
    const created = await api.callAction({
      collection: "accounts",
      actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
      action: {
        Targets: [
          { "@odata.type": "Microsoft.Dynamics.CRM.account", name: "Bulk 1", accountnumber: `${tag}-1` },
          { "@odata.type": "Microsoft.Dynamics.CRM.account", name: "Bulk 2", accountnumber: `${tag}-2` },
        ],
      },
    });
    assert.equal(created.Ids.length, 2);
    const first = await api.retrieve({ collection: "accounts", key: created.Ids[0], select: ["accountnumber"] });
    assert.equal(first.accountnumber, `${tag}-1`);

    await api.callAction({
      collection: "accounts",
      actionName: "Microsoft.Dynamics.CRM.UpsertMultiple",
      action: {
        Targets: [
          {
            "@odata.type": "Microsoft.Dynamics.CRM.account",
            "@odata.id": `accounts(accountnumber='${tag}-2')`,
            name: "Bulk 2 upserted",
          },
          {
            "@odata.type": "Microsoft.Dynamics.CRM.account",
            "@odata.id": `accounts(accountnumber='${tag}-3')`,
            name: "Bulk 3 upserted",
          },
        ],
      },
    });
    const all = await api.retrieveMultiple({
      collection: "accounts",
      select: ["name", "accountnumber"],
      filter: `startswith(accountnumber,'${tag}')`,
      orderBy: ["accountnumber"],
    });
    assert.deepEqual(
      all.value.map((r) => [r.accountnumber, r.name]),
      [
        [`${tag}-1`, "Bulk 1"],
        [`${tag}-2`, "Bulk 2 upserted"],
        [`${tag}-3`, "Bulk 3 upserted"],
      ],
    );
    assert.equal(all.value[1].accountid, created.Ids[1], "UpsertMultiple made a new row instead of updating");
  });
});

describe("client credentials", () => {
  // The app registration of schema.yaml.
  const clientId = "3d0c8f4e-5b7a-4c21-9e6f-1a2b3c4d5e6f";
  const clientSecret = "compat-secret";

  // acquireToken does what MSAL does for a confidential client: a
  // client-credentials grant for <environment URL>/.default at the tenant's
  // token endpoint, here served by the emulator itself.
  async function acquireToken() {
    const response = await fetch(`${rootURL}/contoso.onmicrosoft.com/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        client_id: clientId,
        client_secret: clientSecret,
        scope: "https://contoso.crm.dynamics.com/.default",
        grant_type: "client_credentials",
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const body = await response.json();
    assert.equal(body.token_type, "Bearer");
    assert.ok(body.expires_in > 0);
    return { accessToken: body.access_token };
  }

  test("a token from the token endpoint signs in as the application user", async () => {
    const app = newClient({ onTokenRefresh: acquireToken });
    const me = await app.callFunction("WhoAmI");
    assert.match(me.UserId, GUID_RE);

    const row = await app.create({
      collection: "accounts",
      data: { name: "Written by the app", accountnumber: unique("APP") },
      returnRepresentation: true,
      select: ["_createdby_value", "_modifiedby_value"],
    });
    assert.equal(row._createdby_value, me.UserId);
    assert.equal(row._modifiedby_value, me.UserId);
  });
});

describe("errors", () => {
  test("an unknown column is 400 with Dataverse's error body", async () => {
    const err = await rejectsWith(
      api.create({ collection: "accounts", data: { name: "X", nosuchcolumn: 1 } }),
      400,
    );
    assert.match(err.message, /nosuchcolumn/);
  });

  test("a duplicate alternate key is refused with DuplicateRecordEntityKey", async () => {
    const number = unique("DUP");
    await api.create({ collection: "accounts", data: { name: "One", accountnumber: number } });
    const err = await rejectsWith(
      api.create({ collection: "accounts", data: { name: "Two", accountnumber: number } }),
      412,
      "0x80060892",
    );
    assert.match(err.message, /accountnumber/);
  });

  test("a string over its maximum length is 400", async () => {
    await rejectsWith(
      api.create({ collection: "accounts", data: { name: "L", accountnumber: "x".repeat(21) } }),
      400,
    );
  });

  test("a wrong token is 401", async () => {
    const stranger = newClient({ onTokenRefresh: async () => "not-the-token" });
    await rejectsWith(stranger.retrieveMultiple({ collection: "accounts", select: ["name"], top: 1 }), 401);
  });
});
