"""What test modules share: data builders and helpers (fixtures live in conftest.py), so no
test module imports another and each test gets its own state from a fixture."""
