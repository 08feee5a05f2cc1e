"""kvd's state in `<metadata>`: written by convert, read back by read_metadata."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kvd.launcher.converter import (
    METADATA_NAMESPACE,
    ConversionError,
    DomainMetadata,
    convert,
    read_metadata,
    render_metadata,
)
from kvd.launcher.converter import metadata as metadata_module
from kvd.launcher.converter.errors import ContextError
from tests.launcher.converter.conftest import UID, assert_xml, context, vmi

WHEN = datetime(2025, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
META = DomainMetadata(uid=UID, namespace="default", name="testvmi", grace_period_seconds=30)


def test_convert_writes_identity_and_grace_period() -> None:
    ctx = context(grace_period_seconds=5)
    assert read_metadata(convert(vmi(), ctx)) == replace(META, grace_period_seconds=5)


def test_domain_xml_form() -> None:
    assert_xml(
        metadata_module.element(replace(META, shutdown_requested_at=WHEN)),
        f'<kvd:vmi xmlns:kvd="{METADATA_NAMESPACE}">'
        f"<kvd:uid>{UID}</kvd:uid><kvd:namespace>default</kvd:namespace>"
        "<kvd:name>testvmi</kvd:name><kvd:grace-period-seconds>30</kvd:grace-period-seconds>"
        "<kvd:shutdown-requested-at>2025-03-01T12:30:15.250000Z</kvd:shutdown-requested-at>"
        "</kvd:vmi>",
    )


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(META, id="no-shutdown-requested"),
        pytest.param(replace(META, shutdown_requested_at=WHEN), id="shutdown-requested"),
        pytest.param(
            replace(
                META,
                shutdown_requested_at=datetime(
                    2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))
                ),
            ),
            id="other-timezone",
        ),
    ],
)
def test_round_trips(meta: DomainMetadata) -> None:
    # As the domain manager sets it (bare fragment) and as libvirt returns it.
    assert read_metadata(render_metadata(meta)) == meta
    # Inside a whole domain XML, prefixed, as `virsh dumpxml` shows it.
    xml = convert(vmi(), context()).replace(
        "</kvd:grace-period-seconds>",
        "</kvd:grace-period-seconds>"
        + (
            "<kvd:shutdown-requested-at>"
            + meta.shutdown_requested_at.isoformat()
            + "</kvd:shutdown-requested-at>"
            if meta.shutdown_requested_at
            else ""
        ),
    )
    assert read_metadata(xml) == meta


def test_render_is_what_set_metadata_accepts() -> None:
    """No prefix and no namespace declaration: libvirt adds both and refuses them given."""
    assert render_metadata(META) == (
        f"<vmi><uid>{UID}</uid><namespace>default</namespace><name>testvmi</name>"
        "<grace-period-seconds>30</grace-period-seconds></vmi>"
    )


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        pytest.param("<domain><name>x</name></domain>", "no kvd metadata", id="foreign-domain"),
        pytest.param(
            '<domain><metadata><other:vmi xmlns:other="urn:other"/></metadata></domain>',
            "no kvd metadata",
            id="other-namespace",
        ),
        pytest.param("<vmi><uid>u</uid></vmi>", "lacks <namespace>", id="incomplete"),
        pytest.param(
            "<vmi><uid>u</uid><namespace>n</namespace><name>x</name>"
            "<grace-period-seconds>soon</grace-period-seconds></vmi>",
            "malformed",
            id="bad-number",
        ),
        pytest.param("<vmi", "not XML", id="not-xml"),
    ],
)
def test_unreadable(xml: str, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        read_metadata(xml)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(META, shutdown_requested_at=datetime(2025, 1, 1))


def test_vmi_of_another_uid_is_refused() -> None:
    with pytest.raises(ContextError, match="is not this launcher's"):
        convert(vmi(), context(vmi_uid="another-uid"))
