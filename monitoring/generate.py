#!/usr/bin/env python3
"""Writes rootcertd's Prometheus alert rules and Grafana dashboard.

The thresholds and the selector are CONFIG below; override any of them with
--set KEY=VALUE (for example --set selector='job="pg-certs"' or
--set refresh_failing_for=0s), as the cert-manager mixin does with _config.

  monitoring/generate.py                 rewrite the two files
  monitoring/generate.py --check         fail when they are not what CONFIG gives
  monitoring/generate.py --set K=V --rules FILE   rules with overrides, elsewhere
  monitoring/generate.py --panel-rules FILE       every panel's query as a
                                                  recording rule, for promtool
"""
import argparse
import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
RULES = HERE / "rootcertd-alerts.yaml"
DASHBOARD = HERE / "rootcertd-dashboard.json"

CONFIG = {
    "selector": 'job="rootcertd"',      # which scrape targets are rootcertd
    "down_for": "10m",                  # scrape failing or target gone
    "refresh_failing_factor": "2",      # failing longer than this many refresh intervals
    "refresh_failing_for": "5m",
    "not_ready_for": "15m",             # an instance without a valid file
    "ca_expiry_warning_days": "30",
    "ca_expiry_critical_days": "7",
    "live_check_failing_for": "5m",
    "token_expiry_days": "14",
    "hook_failure_window": "15m",
    "discovery_failing_seconds": "3600",
    "output_failure_window": "15m",
    # Where your copy of docs/observability.md's runbook is served: each
    # alert gets runbook_url = this + "#" + its name in lower case. Empty:
    # only the `runbook` annotation naming the section.
    "runbook_url": "",
}


def alerts(c):
    s = c["selector"]
    inst = ("{{ $labels.name }}{{ if $labels.org }} (org {{ $labels.org }}, id {{ $labels.id }})"
            "{{ end }} on {{ $labels.instance }}")

    def rule(name, expr, for_, severity, summary, description):
        r = {"alert": name, "expr": expr}
        if for_ not in ("0s", "0m", "0"):
            r["for"] = for_
        r["labels"] = {"severity": severity}
        r["annotations"] = {"summary": summary, "description": description,
                            "runbook": "docs/observability.md, Runbook, " + name}
        if c["runbook_url"]:
            r["annotations"]["runbook_url"] = c["runbook_url"] + "#" + name.lower()
        return r

    days = lambda d: f"{d} * 86400"
    return [
        rule("RootcertdDown", f"up{{{s}}} == 0 or absent(up{{{s}}})", c["down_for"], "critical",
             "rootcertd is down or not scraped",
             "No scrape of rootcertd has succeeded for " + c["down_for"] + ": nothing keeps the CA "
             "files current and no other alert can fire. Check the service (systemctl status "
             "rootcertd) and the scrape target."),
        rule("RootcertdRefreshFailing",
             f"rootcertd_consecutive_failures{{{s}}} > 0 and (time() - "
             f"rootcertd_last_success_timestamp_seconds{{{s}}} > {c['refresh_failing_factor']} * "
             f"rootcertd_refresh_interval_seconds{{{s}}})",
             c["refresh_failing_for"], "warning",
             "CA refresh failing for {{ $labels.name }}",
             f"The CA of {inst} has not refreshed for more than {c['refresh_failing_factor']} "
             "refresh intervals; its last good file stays in place. GET /status shows last_error "
             "(the URL path and the HTTP status)."),
        rule("RootcertdNotReady", f"rootcertd_ready{{{s}}} == 0", c["not_ready_for"], "critical",
             "an instance has no valid CA file",
             "rootcertd on {{ $labels.instance }} has had an instance without a valid CA file for "
             + c["not_ready_for"] + ": its clients cannot connect with verify-full. GET /readyz "
             "names it."),
        rule("RootcertdCaExpiringSoon",
             f"rootcertd_cert_not_after_timestamp_seconds{{{s}}} - time() < "
             f"{days(c['ca_expiry_warning_days'])}", "1h", "warning",
             "the CA of {{ $labels.name }} expires within " + c["ca_expiry_warning_days"] + " days",
             f"The newest CA in the file of {inst} expires "
             "{{ $value | humanizeDuration }} from now, and the provider has not served a newer "
             "one. Check the provider's CA rotation schedule."),
        rule("RootcertdCaExpiringCritical",
             f"rootcertd_cert_not_after_timestamp_seconds{{{s}}} - time() < "
             f"{days(c['ca_expiry_critical_days'])} > 0", "10m", "critical",
             "the CA of {{ $labels.name }} expires within " + c["ca_expiry_critical_days"] + " days",
             f"The newest CA in the file of {inst} expires "
             "{{ $value | humanizeDuration }} from now. Clients fail when it does: rotate the "
             "instance's CA at the provider."),
        rule("RootcertdCaExpired",
             f"rootcertd_cert_not_after_timestamp_seconds{{{s}}} < time()", "0m", "critical",
             "every CA in the file of {{ $labels.name }} has expired",
             f"The newest CA in the file of {inst} has expired, so every one has: verify-full "
             "clients fail now."),
        rule("RootcertdServerNotVerifying", f"rootcertd_live_check_success{{{s}}} == 0",
             c["live_check_failing_for"], "critical",
             "{{ $labels.name }}'s server does not verify against its CA file",
             f"The server of {inst} presents a certificate that its installed CA file does not "
             "verify, as a verify-full client would see it: clients fail now. The server may have "
             "rotated before its API; /status shows the live check's error."),
        rule("RootcertdTokenExpiring",
             f"rootcertd_token_expiry_timestamp_seconds{{{s}}} - time() < "
             f"{days(c['token_expiry_days'])}", "1h", "warning",
             "the API token expires within " + c["token_expiry_days"] + " days",
             "The API token (a JWT) of rootcertd on {{ $labels.instance }} expires "
             "{{ $value | humanizeDuration }} from now. Replace api.token_file's contents; no "
             "restart is needed."),
        rule("RootcertdHookFailing",
             f"increase(rootcertd_hook_runs_total{{{s},result=\"failure\"}}[{c['hook_failure_window']}]) > 0",
             "0m", "warning", "on_change hook failing for {{ $labels.name }}",
             f"The on_change hook of {inst} failed in the last {c['hook_failure_window']}; it is "
             "retried with backoff. The consumer may still hold the previous CA: the daemon's log "
             "has the hook's exit status and output."),
        rule("RootcertdDiscoveryFailing",
             f"time() - rootcertd_discovery_last_success_timestamp_seconds{{{s}}} > "
             f"{c['discovery_failing_seconds']}", "0m", "warning",
             "discovery {{ $labels.source }} failing",
             "The list of {{ $labels.source }} has not succeeded for "
             f"{c['discovery_failing_seconds']} s: instances created since are not kept. /status "
             "shows the list's last error."),
        rule("RootcertdDiscoveryPendingRemoval", f"rootcertd_discovery_pending_removals{{{s}}} > 0",
             "0m", "warning", "discovery {{ $labels.source }} would remove many instances",
             "The last list of {{ $labels.source }} left out {{ $value }} instance(s), more than "
             "half: they are kept until the next list agrees. /status lists them under "
             "pending_removal."),
        rule("RootcertdOutputNotWritten",
             f"increase(rootcertd_output_writes_total{{{s},result=\"failure\"}}[{c['output_failure_window']}]) > 0",
             "0m", "warning", "output {{ $labels.output }} not written",
             "A write of output {{ $labels.output }} failed in the last "
             f"{c['output_failure_window']}; the file keeps its previous CAs. /status shows its "
             "last_error."),
    ]


def panels(c):
    s = c["selector"]
    return [
        ("Days until the newest CA expires", "table",
         f"(rootcertd_cert_not_after_timestamp_seconds{{{s}}} - time()) / 86400"),
        ("Time since the last successful refresh", "timeseries",
         f"time() - rootcertd_last_success_timestamp_seconds{{{s}}}"),
        ("Refreshes by result", "timeseries",
         f"sum by (result) (rate(rootcertd_refresh_total{{{s}}}[5m]))"),
        ("Live check (1: the server verifies)", "table", f"rootcertd_live_check_success{{{s}}}"),
        ("CA file changes", "timeseries",
         f"sum by (name) (increase(rootcertd_cert_changes_total{{{s}}}[1h]))"),
        ("Hook runs by result", "timeseries",
         f"sum by (result) (increase(rootcertd_hook_runs_total{{{s}}}[1h]))"),
        ("Instances kept per discovery source", "timeseries",
         f"rootcertd_discovery_instances{{{s}}}"),
        ("CAs per output", "table", f"rootcertd_output_certificates{{{s}}}"),
        ("Instances, ready", "stat", f"sum(rootcertd_instances{{{s}}})"),
    ]


def rules_doc(c):
    return {"groups": [{"name": "rootcertd", "rules": alerts(c)}]}


def dashboard(c):
    out = []
    for i, (title, kind, expr) in enumerate(panels(c)):
        out.append({"id": i + 1, "title": title, "type": kind,
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                    "targets": [{"refId": "A", "expr": expr,
                                 "format": "table" if kind == "table" else "time_series",
                                 "instant": kind == "table"}]})
    return {"title": "rootcertd", "uid": "rootcertd", "schemaVersion": 38, "version": 1,
            "tags": ["rootcertd", "postgresql", "tls"], "time": {"from": "now-24h", "to": "now"},
            "templating": {"list": [{"name": "datasource", "type": "datasource",
                                     "query": "prometheus", "label": "Prometheus"}]},
            "panels": out}


def render(c):
    rules = ("# Generated by monitoring/generate.py from its CONFIG: edit that, not this.\n"
             + yaml.safe_dump(rules_doc(c), sort_keys=False, width=100, allow_unicode=True))
    return rules, json.dumps(dashboard(c), indent=2) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--rules", type=pathlib.Path, help="write the rules here instead")
    ap.add_argument("--panel-rules", type=pathlib.Path)
    args = ap.parse_args()
    c = dict(CONFIG)
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key not in c:
            sys.exit(f"generate: unknown key {key} (one of: {', '.join(c)})")
        c[key] = value
    rules, dash = render(c)
    if args.check:
        stale = [p.name for p, text in ((RULES, rules), (DASHBOARD, dash))
                 if not p.exists() or p.read_text() != text]
        if stale:
            sys.exit(f"generate: {', '.join(stale)} out of date: run monitoring/generate.py")
        return
    if args.panel_rules:
        group = {"name": "rootcertd-dashboard", "rules": [
            {"record": f"rootcertd_dashboard:panel{i + 1}", "expr": expr}
            for i, (_, _, expr) in enumerate(panels(c))]}
        args.panel_rules.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
        return
    if args.rules:
        args.rules.write_text(rules)
        return
    RULES.write_text(rules)
    DASHBOARD.write_text(dash)


if __name__ == "__main__":
    main()
