"""Verify's verdict, from what its comparison found: no service needed."""

from mongo_migration.verification import KeyCheck, failure
from tests.staging import users


def test_verify_passes_only_without_differences_or_duplicates_and_names_ten_ids_of_each_kind():
    table = users("users")
    assert failure(KeyCheck(source=5), "app.users", table) is None

    missing = {f"k{n:02}": "missing" for n in range(12)}
    check = KeyCheck(
        source=12, differences={**missing, "x": "unknown", "y": "changed"}, why="no change explains"
    )
    check.duplicates = [("d", 2)]

    assert failure(check, "app.users", table) == (
        "Source app.users and target public.users differ: 12 _id missing in the target: "
        f"{sorted(missing)[:10]}; 1 _id not in the source: ['x']; 1 _id of another content: ['y']: "
        "no change explains; _id held more than once by the target: [('d', 2)]"
    )
    twice = failure(KeyCheck(source=3, duplicates=[("d", 2)]), "app.users", table)
    assert twice is not None and twice.endswith("_id held more than once by the target: [('d', 2)]")
