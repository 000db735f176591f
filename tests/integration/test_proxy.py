"""Behind a proxy: TLS tunnelled through a real HTTP CONNECT proxy (Debian's
tinyproxy), credentials from a file, NO_PROXY, and the token never in clear."""
import os
import subprocess

import pytest

from harness import API_PATH, BINARY, GOOD_TOKEN, Recorder, Tinyproxy, free_port

INSTANCE = {"org": "org_a", "id": "inst_p", "name": "prod"}


@pytest.fixture
def served(api, pki):
    ca = pki.ca("proxy-ca", "Proxied CA")
    api.serve("org_a", "inst_p", pem=ca)
    return ca


@pytest.fixture
def proxies(tmp_path):
    started = []

    def start(**kw):
        p = Tinyproxy(tmp_path / f"tinyproxy{len(started)}", **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def env_with(**variables):
    env = dict(os.environ)
    env.update(variables)
    return env


def test_https_proxy_tunnels_tls_and_the_token_never_crosses_in_clear(api, served, proxies,
                                                                       make_daemon):
    proxy = proxies()
    wire = Recorder(proxy.port)
    try:
        d = make_daemon([INSTANCE])
        r = d.once(env=env_with(HTTPS_PROXY=f"http://127.0.0.1:{wire.port}"))
        assert r.returncode == 0, r.stderr
        assert d.file("prod").read_text().strip() == served.read_text().strip()
        assert f"through proxy http://127.0.0.1:{wire.port} (from HTTPS_PROXY)" in r.stderr
        # The proxy was asked for the API's origin, and the request got there.
        assert f"CONNECT localhost:{api.port} HTTP/1.1" in proxy.connects()
        assert [row for row in api.requests() if row[3] == 200]
        # Everything rootcertd sent towards the proxy: the CONNECT in clear,
        # then only TLS records. Neither the token nor the path is readable.
        sent = wire.client_bytes()
        assert sent.startswith(f"CONNECT localhost:{api.port} HTTP/1.1\r\n".encode())
        assert GOOD_TOKEN.encode() not in sent
        assert b"Bearer" not in sent and b"/api/v1/orgs" not in sent
        assert sent.split(b"\r\n\r\n", 1)[1][:1] == b"\x16", "a TLS handshake record follows"
    finally:
        wire.stop()


def test_api_proxy_with_basic_auth_from_a_file(api, served, proxies, make_daemon, tmp_path):
    password = "pw-7731-Zq"
    proxy = proxies(basic_auth=("svc", password))
    auth = tmp_path / "proxy-auth"
    d = make_daemon([INSTANCE], api={"proxy": proxy.url})

    # No credentials: the error names the instance, the path, the proxy and the fix.
    r = d.once()
    assert r.returncode == 1
    assert "prod" in r.stderr and API_PATH.format(org="org_a", id="inst_p") in r.stderr
    assert f"proxy {proxy.url} (CONNECT localhost:{api.port}): answered 407" in r.stderr
    assert "set api.proxy_auth_file" in r.stderr
    assert not d.file("prod").exists()

    # Wrong credentials: refused, and the password is never shown.
    auth.write_text("svc:not-the-password\n")
    auth.chmod(0o600)
    d.write_config([INSTANCE], api={"proxy": proxy.url, "proxy_auth_file": str(auth)})
    r = d.once()
    assert r.returncode == 1
    assert "the proxy refused the credentials" in r.stderr  # tinyproxy says 401 here
    assert "not-the-password" not in r.stderr

    # Right credentials, in a file others can read: it works, with a warning.
    auth.write_text(f"svc:{password}\n")
    auth.chmod(0o644)
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert d.file("prod").read_text().strip() == served.read_text().strip()
    assert f"proxy auth file {auth} is open to others or group-writable (mode 0644)" in r.stderr
    assert password not in r.stderr and GOOD_TOKEN not in r.stderr


def test_no_proxy_and_api_proxy_none_go_direct_and_a_dead_proxy_keeps_the_file(
        api, served, make_daemon):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    d = make_daemon([INSTANCE])
    r = d.once(env=env_with(HTTPS_PROXY=dead, NO_PROXY="example.com, localhost"))
    assert r.returncode == 0, r.stderr
    before = d.file("prod").read_bytes()
    stat = d.file("prod").stat()

    r = d.once(env=env_with(HTTPS_PROXY=dead))
    assert r.returncode == 1
    assert f"connect to proxy {dead}: Connection refused" in r.stderr
    assert d.file("prod").read_bytes() == before
    assert d.file("prod").stat().st_ino == stat.st_ino

    d.write_config([INSTANCE], api={"proxy": "none"})
    r = d.once(env=env_with(HTTPS_PROXY=dead))
    assert r.returncode == 0, r.stderr
    assert "through proxy" not in r.stderr


def test_a_bad_proxy_variable_is_a_clear_error_without_its_password(api, served, make_daemon):
    d = make_daemon([INSTANCE])
    bad = env_with(HTTPS_PROXY="https://svc:pw-55-secret@proxy.internal:3128")
    r = subprocess.run([str(BINARY), "--config", str(d.config), "--check-config"],
                       capture_output=True, text=True, env=bad)
    assert r.returncode == 2
    assert "HTTPS_PROXY: 'https://[credentials]@proxy.internal:3128' must use http://" in r.stderr
    r = d.once(env=bad)
    assert r.returncode != 0 and "HTTPS_PROXY" in r.stderr
    assert not d.file("prod").exists()
    for out in (r.stderr, r.stdout):
        assert "pw-55-secret" not in out
