"""The failure vocabulary shared by the client, the scenarios, the logs and the report.

Every failed request carries exactly one of these classes, so the report can say *how* a model
or server fails, not only that it did. Setup problems (bad config, no server) are `SetupError`:
the CLI prints their message on one line and exits non-zero, no traceback.
"""

from __future__ import annotations

CONNECTION_REFUSED = "connection_refused"  # nothing listening / DNS failure / host unreachable
CONNECT_TIMEOUT = "connect_timeout"  # TCP/TLS connect did not finish in time
READ_TIMEOUT = "read_timeout"  # the server went silent for longer than the read timeout
TOTAL_TIMEOUT = "total_timeout"  # the whole request exceeded its budget
CONNECTION_DROPPED = "connection_dropped"  # the peer closed the connection mid-response
HTTP_STATUS = "http_status"  # a non-2xx status (the status and a body excerpt are kept)
MALFORMED_STREAM = "malformed_stream"  # bytes that are not valid SSE / JSON chunks
STREAM_ERROR = "stream_error"  # the server sent an error object inside the stream
CONTEXT_OVERFLOW = "context_overflow"  # the prompt does not fit the model's context window
EMPTY_RESPONSE = "empty_response"  # a 2xx answer without any content or tool call
CANCELLED = "cancelled"  # we cancelled it (stop, skip, grace period over)
BAD_RESPONSE = "bad_response"  # a 2xx non-stream body that is not the expected JSON
CHECK_FAILED = "check_failed"  # the request worked but the scenario's success rule did not hold
PROMPT_TRUNCATED = "prompt_truncated"  # HTTP 200, but the server counted far fewer prompt tokens than sent
STALLED = "stalled"  # the stream went silent for stall_s or longer between tokens, even if it finished
RUNAWAY_STREAM = "runaway_stream"  # far more content chunks than max_tokens allows: cut, not read to its end
# soaktui's own tool list did not fit the model's context: retried with fewer tools. Like a
# cancellation, neither a success nor a failure of the model or the server (counted apart).
TOOLS_DID_NOT_FIT = "tools_did_not_fit"
OTHER = "other"

ALL = (
    CONNECTION_REFUSED,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    TOTAL_TIMEOUT,
    CONNECTION_DROPPED,
    HTTP_STATUS,
    MALFORMED_STREAM,
    STREAM_ERROR,
    CONTEXT_OVERFLOW,
    EMPTY_RESPONSE,
    CANCELLED,
    BAD_RESPONSE,
    CHECK_FAILED,
    PROMPT_TRUNCATED,
    STALLED,
    RUNAWAY_STREAM,
    TOOLS_DID_NOT_FIT,
    OTHER,
)

# Classes that say "the server is not serving right now" (used by failover and the saturation guard).
UNAVAILABLE = frozenset(
    {CONNECTION_REFUSED, CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT, CONNECTION_DROPPED, HTTP_STATUS}
)


class SetupError(Exception):
    """A problem the user must fix before a run can start; the message is shown as is."""
