"""Schemathesis hooks for scanplane's API fuzzing (loaded by scripts/api-fuzz.sh).

The report endpoint takes `application/x-ndjson`: one JSON object (a `ReportLine`) per
line. Schemathesis has no serializer for it, so generated values are written as NDJSON
here: a list as one line per item, anything else as one line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


# The advisory import takes an OSV `all.zip` as `application/zip`. Generated values are
# written as raw bytes (a byte string as is, anything else as its JSON text), so that the
# server is fuzzed with arbitrary non-zip bodies and answers them with a 422.
@schemathesis.serializer("application/zip")
def zip_body(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()
