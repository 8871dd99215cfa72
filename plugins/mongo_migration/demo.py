"""Demo data in the source: the seed's fake users, or the example mapping's orders.

    python -m mongo_migration.demo users 100000 [--database app --collection users]
    python -m mongo_migration.demo orders 10000 [--database app --collection orders]

Both are the same on every call (user or order ``n`` always has the same
``_id`` and fields), so filling again inserts only what is missing. It writes
into the source, so it runs only where the deployment allows seeding
(``MONGO_MIGRATION_ALLOW_SEEDING=true``: the local stack, the tests and the
compose file's ``demo`` profile).
"""

from __future__ import annotations

import argparse
import sys

from include import config
from mongo_migration.connections import mongo_hook
from mongo_migration.demo_orders import fill_orders
from mongo_migration.users import seed_users

FILL = {
    "users": lambda collection, wanted: seed_users(collection, wanted, config.FAKER_SEED),
    "orders": fill_orders,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(FILL), help="what to fill the collection with")
    parser.add_argument("wanted", type=int, help="users or orders 0 to N-1 to ensure in the collection")
    parser.add_argument("--database", default="app")
    parser.add_argument("--collection", help="default: the kind's name")
    arguments = parser.parse_args(argv)
    if not config.seeding_allowed():
        sys.exit(
            "This deployment does not allow writing demo data into the source "
            f"({config.ALLOW_SEEDING_VARIABLE} is not true): nothing was written."
        )
    name = arguments.collection or arguments.kind
    with mongo_hook(config.MONGO_CONN_ID) as hook:
        inserted = FILL[arguments.kind](hook.get_collection(name, arguments.database), arguments.wanted)
    print(f"Inserted {inserted} demo {arguments.kind} into {arguments.database}.{name}")


if __name__ == "__main__":
    main()
