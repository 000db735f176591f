"""The shipped alert rules against the real daemon, scraped by Debian's Prometheus."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from harness import LONG_JWT, ROOT, free_port, http_get, wait_for
from test_discovery import put_list, tembo_discovery, tembo_instance

GENERATE = ROOT / "monitoring" / "generate.py"


def expressions():
    """Every PromQL expression of the shipped rules and dashboard."""
    import yaml
    rules = yaml.safe_load((ROOT / "monitoring" / "rootcertd-alerts.yaml").read_text())
    dash = json.loads((ROOT / "monitoring" / "rootcertd-dashboard.json").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    annotations = [v for g in rules["groups"] for r in g["rules"] for v in r["annotations"].values()]
    return exprs, annotations


def alerts(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as r:
        return json.load(r)["data"]["alerts"]


@pytest.fixture
def daemon(api, pki, make_daemon):
    ca = pki.ca("monitoring-ca", days=365)  # no expiry alert pending
    for inst in ("inst_a", "inst_b"):
        api.serve("org_a", inst, ca)
    api.serve("org_d", "inst_c", ca)
    put_list(api, "org_d", [tembo_instance("inst_c", "gamma", port=api.port)])
    port = free_port()
    d = make_daemon([{"org": "org_a", "id": "inst_a"}, {"org": "org_a", "id": "inst_b"}],
                    token=LONG_JWT, refresh_interval="1s", jitter=0,
                    metrics={"listen": f"127.0.0.1:{port}"},
                    discover=[tembo_discovery(api, interval="1s")],
                    outputs=[{"name": "all", "select": {"name": "*"}}])
    d.start()
    wait_for(lambda: (d.cert_dir / "all.pem").exists(), 15, "the output")
    d.metrics_port = port
    return d


def test_every_metric_and_label_the_rules_and_dashboard_use_exists(daemon):
    exprs, annotations = expressions()
    exposition = http_get(daemon.metrics_port, "/metrics")[2]
    families = set(re.findall(r"^# TYPE (\w+)", exposition, re.M))
    used = {m for e in exprs for m in re.findall(r"\b(rootcertd_\w+)", e)}
    assert used and used <= families, sorted(used - families)
    labels = {l for e in exprs for l in re.findall(r"(?:by \(|,)\s*(\w+)\s*\)?", e) if l != "job"}
    labels |= {l for e in exprs for l in re.findall(r"(\w+)=\"", e) if l != "job"}
    labels |= {l for a in annotations for l in re.findall(r"\$labels\.(\w+)", a)
               if l != "instance"}  # instance: Prometheus' own target label
    samples = [line for line in exposition.splitlines() if line.startswith("rootcertd_")]
    for label in labels:
        assert any(f'{label}="' in s for s in samples), label


def test_a_failing_api_fires_the_refresh_alert_in_prometheus(daemon, api, tmp_path):
    rules = tmp_path / "rules.yaml"
    # The documented override: no wait before firing, for a test.
    subprocess.run([sys.executable, str(GENERATE), "--set", "refresh_failing_for=0s",
                    "--rules", str(rules)], check=True)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "rootcertd", "static_configs": [
            {"targets": [f"127.0.0.1:{daemon.metrics_port}"]}]}]}))
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prom.log", "w"))
    try:
        def up():
            try:
                return alerts(port) is not None
            except OSError:
                return False
        wait_for(up, 30, "prometheus")
        wait_for(lambda: not [a for a in alerts(port) if a["state"] == "firing"], 10,
                 "a healthy fleet without firing alerts")
        api.serve("org_a", "inst_b", body="<html>maintenance</html>")
        failing = lambda: [a for a in alerts(port)
                           if a["labels"]["alertname"] == "RootcertdRefreshFailing"
                           and a["state"] == "firing"]
        wait_for(failing, 30, "RootcertdRefreshFailing firing")
        [alert] = failing()
        assert alert["labels"]["name"] == "inst_b" and alert["labels"]["severity"] == "warning"
        assert "inst_b" in alert["annotations"]["description"]
        others = {a["labels"]["alertname"] for a in alerts(port)} - {"RootcertdRefreshFailing"}
        assert not others, others
    finally:
        prom.terminate()
        prom.wait(10)
