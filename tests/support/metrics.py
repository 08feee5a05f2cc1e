"""Prometheus metrics read back as a scraper reads them (prometheus_client's own parser)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int, *, host: str = "127.0.0.1") -> Samples:
    """`GET /metrics` of a daemon's metrics listener."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples called `name`, by the value of their label `label`."""
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}
