import pytest


@pytest.fixture
def client(flask_client, redis_client):
    """envmgr's test client (db.session is the test's session); asking for redis_client empties the app's cache."""
    return flask_client
