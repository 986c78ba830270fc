"""The HTTP response of a run's stream: Server-Sent Events in the AI SDK UI message protocol."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from runs.streams import HEADERS, MEDIA_TYPE, sse_frames


def run_stream_response(
    run_id: str, *, offset: int, keep_alive_s: float, tail_index: int | None = None
) -> Response:
    """Stream a run's chunks from ``offset`` with the protocol's headers and the run's id.

    ``tail_index`` (the index of the stream's last chunk when the answer starts) is sent as
    ``x-workflow-stream-tail-index`` on resumed streams.
    """
    headers = {**HEADERS, "x-workflow-run-id": run_id}
    if tail_index is not None:
        headers["x-workflow-stream-tail-index"] = str(tail_index)
    return StreamingResponse(
        sse_frames(run_id, offset=offset, keep_alive_s=keep_alive_s),
        media_type=MEDIA_TYPE,
        headers=headers,
    )
