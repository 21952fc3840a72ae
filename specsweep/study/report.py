"""report.html: the study's tables and plots on one self-contained page (images inlined), for readers without
a W&B account. No scripts and no external resources, so it opens anywhere, offline."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
td { white-space: nowrap; }
th { background: #f2f2f2; }
img { max-width: 100%; margin: 0.5rem 1rem 1rem 0; border: 1px solid #eee; }
.note { color: #555; max-width: 60rem; }
"""


def render(sections: list[tuple[str, pd.DataFrame]], plots: list[Path], sources: list[Path], note: str,
           summary: str) -> str:
    parts = ["<h1>specsweep study</h1>",
             f"<p class='note'>{html.escape(summary)}. Sweeps: {', '.join(html.escape(str(s)) for s in sources)}. "
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
             f"<p class='note'>{html.escape(note)}</p>"]
    for heading, frame in sections:
        table = frame.to_html(index=False, border=0, na_rep="") if not frame.empty else "<p>(no finished cells)</p>"
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{table}")
    if plots:
        parts.append("<h2>Plots</h2>")
    for path in plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>specsweep study</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
