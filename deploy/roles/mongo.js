// The source's least-privileged user for the DAGs (docs/connecting.md): it may read the collections of
// one database and their change streams, and read the oplog's first entry and size, so that preflight
// can compare the oplog's window with the published point's age. It may write nothing.
//
//   MONGO_MIGRATOR_PASSWORD=... MONGO_MIGRATION_SOURCE_DATABASE=app mongosh "mongodb://<admin>@<host>/admin" deploy/roles/mongo.js
//
// The compose file's demo source runs it on its first start. Run again, it updates the role's
// privileges and the user's password. On Atlas, give the user the same actions in a custom role.
const database = process.env.MONGO_MIGRATION_SOURCE_DATABASE || "app";
const password = process.env.MONGO_MIGRATOR_PASSWORD;
if (!password) throw new Error("MONGO_MIGRATOR_PASSWORD is not set");
const admin = db.getSiblingDB("admin");
const privileges = [
  // find: pages, counts, verify; changeStream: the catch-up; listCollections: preflight; collStats: sizes.
  { resource: { db: database, collection: "" }, actions: ["find", "changeStream", "listCollections", "collStats"] },
  // The oplog window (preflight): its oldest entry and whether it has reached its size.
  { resource: { db: "local", collection: "oplog.rs" }, actions: ["find", "collStats"] },
];
if (admin.getRole("mongoMigrationReader")) {
  admin.updateRole("mongoMigrationReader", { privileges: privileges, roles: [] });
} else {
  admin.createRole({ role: "mongoMigrationReader", privileges: privileges, roles: [] });
}
if (admin.getUser("migrator")) {
  admin.updateUser("migrator", { pwd: password, roles: ["mongoMigrationReader"] });
} else {
  admin.createUser({ user: "migrator", pwd: password, roles: ["mongoMigrationReader"] });
}
print(`migrator may read ${database} and its change streams, and the oplog's window`);
