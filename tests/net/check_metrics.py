#!/usr/bin/python3
"""Runs `interop_peer metrics` (the command in its arguments, plus a folder) and checks its two scrapes with prometheus_client's parser (Debian's
python3-prometheus-client): valid names, labels and types, and the values that must move with load."""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parse(text):
    """{(sample name, frozenset(labels)): value}, after checking every family."""
    samples = {}
    families = list(text_string_to_metric_families(text))
    assert families, "no metric families"
    seen = set()
    for family in families:
        assert NAME.match(family.name), family.name
        assert family.name not in seen, f"family {family.name} twice"
        seen.add(family.name)
        assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
        assert family.documentation, f"{family.name} has no help"
        assert family.name.startswith("krmx_"), family.name
        for s in family.samples:
            for key in s.labels:
                assert LABEL.match(key), (s.name, key)
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def main():
    peer = sys.argv[1:]
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([*peer, folder], check=True, timeout=60)
        before = parse(Path(folder, "before.txt").read_text())
        after = parse(Path(folder, "after.txt").read_text())

    checks = []

    def check(what, ok):
        checks.append((what, ok))
        print(("ok   " if ok else "FAIL ") + what)

    check("frames_in moved by the link and 37 appends",
          value(after, "krmx_server_frames_in_total") - value(before, "krmx_server_frames_in_total") >= 38)
    check("bytes_out moved", value(after, "krmx_server_bytes_out_total") > value(before, "krmx_server_bytes_out_total"))
    check("host messages: 37", value(after, "krmx_host_messages_total") == 37)
    check("accepted on counter: 30", value(after, "krmx_domain_accepted_total", domain="counter") == 30)
    check("accepted on scratch: 7", value(after, "krmx_domain_accepted_total", domain="scratch") == 7)
    check("nothing refused on counter", value(after, "krmx_domain_rejected_total", domain="counter") == 0)
    check("append-to-confirm count on counter: 30",
          value(after, "krmx_append_confirm_seconds_count", domain="counter") == 30)
    check("append-to-confirm +Inf bucket on scratch: 7",
          value(after, "krmx_append_confirm_seconds_bucket", domain="scratch", le="+Inf") == 7)
    check("append-to-confirm sum is positive", value(after, "krmx_append_confirm_seconds_sum", domain="counter") > 0)
    commits = value(after, "krmx_domain_commits_total", domain="counter")
    check("commits happened", commits is not None and commits >= 1)
    check("one commit duration per commit", value(after, "krmx_commit_seconds_count", domain="counter") == commits)
    check("no commit histogram before load", value(before, "krmx_commit_seconds_count", domain="counter") is None)
    check("no commit histogram for the memory domain", value(after, "krmx_commit_seconds_count", domain="scratch") is None)
    check("the store's counters for the durable domain",
          value(after, "krmx_store_failed_checkpoints_total", domain="counter") == 0)
    check("history bytes grew", value(after, "krmx_domain_history_bytes", domain="counter") >
          value(before, "krmx_domain_history_bytes", domain="counter"))
    check("linked users: 1", value(after, "krmx_linked_users") == 1)
    check("domains: 2", value(after, "krmx_domains") == 2)
    check("ready", value(after, "krmx_ready") == 1)
    check("one refused scrape", value(after, "krmx_metrics_refused_total") == 1)
    check("scrapes counted", value(after, "krmx_metrics_scrapes_total") == 2)
    failed = [what for what, ok in checks if not ok]
    if failed:
        print(f"{len(failed)} checks failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
