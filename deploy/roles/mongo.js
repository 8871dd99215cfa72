// The source's least-privileged user for the DAGs (docs/connecting.md): it may read the collections of
// the databases named, and their change streams, and read the oplog's first entry and size, so that
// preflight can compare the oplog's window with the published point's age, and a sharded collection's
// shard key. It may write nothing.
//
//   MONGO_MIGRATOR_PASSWORD=... MONGO_MIGRATION_SOURCE_DATABASES=app,shop \
//     mongosh "mongodb://<admin>@<host>/admin" deploy/roles/mongo.js
//
// Run again with another database, it adds that database and keeps those granted before (a new
// collection in a new database: docs/deploying.md), and sets the password. The compose file's demo
// source runs it on its first start. On Atlas, give the user the same actions in a custom role.
const databases = (process.env.MONGO_MIGRATION_SOURCE_DATABASES || "app").split(",").map((name) => name.trim());
const password = process.env.MONGO_MIGRATOR_PASSWORD;
if (!password) throw new Error("MONGO_MIGRATOR_PASSWORD is not set");
const admin = db.getSiblingDB("admin");
const privileges = [
  // find: pages, counts, verify; changeStream: open_change_stream and the catch-up; listCollections: preflight.
  ...databases.map((database) => ({
    resource: { db: database, collection: "" },
    actions: ["find", "changeStream", "listCollections"],
  })),
  // The oplog window (preflight): its oldest entry and whether it has reached its size ($collStats).
  { resource: { db: "local", collection: "oplog.rs" }, actions: ["find", "collStats"] },
  // A sharded collection's shard key (preflight, through mongos): _id must lead it.
  { resource: { db: "config", collection: "collections" }, actions: ["find"] },
];
if (admin.getRole("mongoMigrationReader")) {
  admin.grantPrivilegesToRole("mongoMigrationReader", privileges);
} else {
  admin.createRole({ role: "mongoMigrationReader", privileges: privileges, roles: [] });
}
if (admin.getUser("migrator")) {
  admin.updateUser("migrator", { pwd: password, roles: ["mongoMigrationReader"] });
} else {
  admin.createUser({ user: "migrator", pwd: password, roles: ["mongoMigrationReader"] });
}
print(`migrator may read ${databases.join(", ")} and their change streams, and the oplog's window`);
