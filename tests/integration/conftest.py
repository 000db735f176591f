import pytest

from harness import BINARY, Daemon, FakeApi, Pki, ProviderApis


def pytest_configure(config):
    if not BINARY.exists():
        raise pytest.UsageError(f"{BINARY} is missing: build first (scripts/test does)")


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def api(tmp_path, pki):
    server = FakeApi(tmp_path / "api", pki)
    yield server
    server.stop()


@pytest.fixture
def providers(tmp_path, pki):
    """nginx playing every provider's CA endpoint (and a hub) as documented."""
    server = ProviderApis(tmp_path / "providers", pki)
    yield server
    server.stop()


@pytest.fixture
def make_daemon(tmp_path, api):
    daemons = []

    def make(instances, **settings):
        d = Daemon(tmp_path / f"d{len(daemons)}", api, instances, **settings)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.stop()
