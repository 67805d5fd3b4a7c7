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
