"""Seeding fake users against the real MongoDB wire-protocol server."""

from mongo_migration.users import BATCH_SIZE, fake_users, seed_users, user_id

SEED = 1234


def test_the_same_user_number_always_gives_the_same_user():
    assert fake_users(BATCH_SIZE, 5, SEED) == fake_users(BATCH_SIZE, 5, SEED)
    assert fake_users(0, 5, SEED) != fake_users(BATCH_SIZE, 5, SEED)


def test_a_user_has_the_fields_the_migration_expects():
    user = fake_users(0, 1, SEED)[0]
    assert user["_id"] == user_id(0)
    assert set(user) >= {"_id", "username", "email", "age", "created_at", "address", "tags"}
    assert isinstance(user["address"], dict)
    assert isinstance(user["tags"], list)


def test_user_ids_follow_user_numbers():
    assert user_id(0) < user_id(1) < user_id(BATCH_SIZE) < user_id(10**8)


def test_seeding_tops_up_and_never_duplicates(mongo_collection):
    assert seed_users(mongo_collection, 300, SEED) == 300
    assert seed_users(mongo_collection, 300, SEED) == 0
    assert seed_users(mongo_collection, 500, SEED) == 200
    assert mongo_collection.count_documents({}) == 500
    assert sorted(doc["_id"] for doc in mongo_collection.find({}, {"_id": 1})) == [
        user_id(n) for n in range(500)
    ]


def test_a_seed_cut_off_in_the_middle_of_a_batch_is_completed_exactly(mongo_collection):
    # A crashed unordered insert leaves an arbitrary part of its batch behind.
    mongo_collection.insert_many(fake_users(0, 400, SEED)[::3])

    assert seed_users(mongo_collection, 400, SEED) == 400 - len(range(0, 400, 3))

    assert sorted(doc["_id"] for doc in mongo_collection.find({}, {"_id": 1})) == [
        user_id(n) for n in range(400)
    ]


def test_seeding_fills_a_hole_anywhere_and_leaves_other_documents_alone(mongo_collection):
    seed_users(mongo_collection, 20_000, SEED)
    mongo_collection.delete_one({"_id": user_id(5)})
    mongo_collection.insert_one({"name": "not a seeded user"})

    assert seed_users(mongo_collection, 20_000, SEED) == 1

    assert mongo_collection.find_one({"_id": user_id(5)})["email"] == fake_users(0, 6, SEED)[5]["email"]
    assert mongo_collection.count_documents({"_id": {"$lt": user_id(20_000)}}) == 20_000
    assert mongo_collection.count_documents({}) == 20_001
