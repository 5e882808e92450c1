#!/usr/bin/env python3
"""Copies crates/lifeboat-core/scripts/lifeboat-repair.sh into the SSM Command
document in infra/template.yaml (between the LIFEBOAT_SCRIPT lines), so the
document operators run by hand is the script interruption-handler sends.

    sync-repair-document.py          rewrite the template
    sync-repair-document.py --check  exit 1 if the template is out of date
"""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
template = root / "infra" / "template.yaml"
script = (root / "crates" / "lifeboat-core" / "scripts" / "lifeboat-repair.sh").read_text()

lines = template.read_text().splitlines(keepends=True)
start = next(i for i, l in enumerate(lines) if l.rstrip().endswith("<<'LIFEBOAT_SCRIPT'"))
end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "LIFEBOAT_SCRIPT")
indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
body = [(indent + l if l.strip() else "\n") for l in script.splitlines(keepends=True)]
rendered = "".join(lines[: start + 1] + body + lines[end:])

if "--check" in sys.argv:
    if rendered != template.read_text():
        print("infra/template.yaml: the repair document differs from lifeboat-repair.sh; run `make infra`", file=sys.stderr)
        sys.exit(1)
else:
    template.write_text(rendered)
