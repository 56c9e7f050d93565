"""Schemathesis hooks for scripts/api-fuzz.sh: keep every request short.

The sidecar's API has requests that wait by design: `?wait=stored|delivered`
for up to `timeout_ms`, and the event streams, which stay open unless
`limit` or `idle_ms` ends them. A fuzzer that picks a two-minute wait (a
valid value) or opens a stream without an end would spend its time budget
waiting; `POST /v1/groups` waits for the new group's id by default. These
hooks cap the waits to 200 ms and give every stream an
`idle_ms` of 200; everything else is generated as the documents say.
"""

import schemathesis


@schemathesis.hook
def map_query(ctx, query):
    if query is None:
        return query
    if isinstance(query.get("timeout_ms"), int):
        query["timeout_ms"] = min(query["timeout_ms"], 200)
    if "wait" in query and "timeout_ms" not in query:
        query["timeout_ms"] = 200
    return query


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path = case.operation.path
    if path in ("/v1/events", "/v1/events/ws"):
        q = dict(case.query or {})
        if not isinstance(q.get("idle_ms"), int) or q["idle_ms"] > 200:
            q["idle_ms"] = 200
        case.query = q
    elif path in ("/v1/messages", "/v1/read", "/v1/recall"):
        q = dict(case.query or {})
        if q.get("wait") in ("stored", "delivered") and not (isinstance(q.get("timeout_ms"), int) and q["timeout_ms"] <= 200):
            q["timeout_ms"] = 200
        case.query = q
    elif path == "/v1/groups":
        # Creating waits for the group's id by default (10 s).
        # A timeout_ms that is not a valid value is left alone: it is what a
        # negative case tests, and it is refused at once.
        q = dict(case.query or {})
        t = q.get("timeout_ms")
        if "timeout_ms" not in q or (isinstance(t, int) and 200 < t <= 120000):
            q["timeout_ms"] = 200
        case.query = q
