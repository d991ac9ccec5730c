"""What the worker prepares before Faust starts: its tables' changelog topics."""

from __future__ import annotations

from prsm_events.settings import Settings
from streams.app import build_app
from streams.worker import changelog_specs


def test_the_changelogs_are_the_tables_own_as_faust_would_create_them() -> None:
    settings = Settings(topic_prefix="cl.", app_id="cl", partitions=5,
                        max_message_bytes=2_000_000)
    app = build_app(settings)
    specs = {s.name: s for s in changelog_specs(app)}
    assert set(specs) == {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert set(specs) == {f"cl-{name}-changelog"
                          for name in ("ledger", "reservations", "spend", "seen")}
    for spec in specs.values():
        assert spec.partitions == 5
        # compacted (Faust's table default), and the records the worker may write
        assert spec.configs == {"cleanup.policy": "compact",
                                **settings.changelog_configs}
