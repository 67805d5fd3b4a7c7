"""Renders a Helm chart like `helm template`, with Helm's own Go engine (the helm-python-sdk
wheel, `pip install helm-python-sdk==0.2.2`), for machines without a helm binary.

Usage: render_chart.py CHART RELEASE NAMESPACE [VALUES.json]
Prints every rendered manifest as a multi-document YAML stream. Exit 3: SDK missing.
"""
import json
import sys

try:
    import helm_python as helm
except ImportError:
    sys.stderr.write("helm-python-sdk is not installed: pip install helm-python-sdk==0.2.2\n")
    sys.exit(3)


def main() -> None:
    chart_dir, release, namespace = sys.argv[1:4]
    values = {}
    if len(sys.argv) > 4:
        with open(sys.argv[4], encoding="utf-8") as f:
            values = json.load(f)
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        print(f"---\n# Source: {path}\n{rendered[path]}")


main()
