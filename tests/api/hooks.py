"""Schemathesis hooks of tests/e2e/openapi.rs (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis

# POST /benchmark renders `iterations` frames on the CPU: up to 2000, tens of seconds each call. Valid counts
# above 20 are folded into 1..20 so the run stays short; everything else (the negative cases) passes as is.
MAX_ITERATIONS = 20


@schemathesis.hook
def map_case(ctx, case):
    if case.operation.path == "/benchmark" and isinstance(case.query, dict):
        n = case.query.get("iterations")
        if isinstance(n, int) and not isinstance(n, bool) and n > MAX_ITERATIONS:
            case.query["iterations"] = n % MAX_ITERATIONS + 1
    return case


# GET /test-frame answers JPEG bytes, described as a binary string: accepted as that string only when the
# bytes are a whole JPEG (start and end markers), so a broken frame is a finding too.
@schemathesis.deserializer("image/jpeg")
def jpeg(ctx, response):
    body = response.content
    if not (body.startswith(b"\xff\xd8\xff") and body.endswith(b"\xff\xd9")):
        raise ValueError(f"not a complete JPEG ({len(body)} bytes)")
    return f"<{len(body)} bytes of JPEG>"
