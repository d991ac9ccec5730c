"""A Faust agent that only iterates and acknowledges events: Faust's per-event ceiling.

    python benchmarks/faust_noop.py BOOTSTRAP TOPIC COUNT OUT_FILE [--in-place]

Writes the events/s between its first and its COUNT-th event to OUT_FILE, then exits. With
``--in-place`` the consumer hands messages to the stream as the worker's does
(``faust_compat.deliver_without_tasks``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import faust

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

bootstrap, topic_name, count, out_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
app = faust.App(f"noop-{topic_name}", broker=f"kafka://{bootstrap}", web_enabled=False,
                consumer_auto_offset_reset="earliest", autodiscover=False)
topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                  value_serializer="raw")


if "--in-place" in sys.argv[5:]:
    from streams.faust_compat import deliver_without_tasks

    deliver_without_tasks(app)


@app.agent(topic)
async def noop(stream: faust.StreamT) -> None:
    seen, started = 0, 0.0
    async for event in stream.noack().events():
        if seen == 0:
            started = time.perf_counter()
        seen += 1
        await stream.ack(event)
        if seen >= count:
            with open(out_file, "w") as out:
                out.write(f"{(count - 1) / (time.perf_counter() - started):.0f}\n")
            os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "error"]
    app.main()
