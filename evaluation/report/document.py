"""A tiny document model (sections of tables, images, text) rendered to HTML and Markdown."""

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    """A header and rows of already-formatted cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    """A PNG relative to the report folder, with a caption."""

    src: str
    caption: str


@dataclass
class Section:
    """A titled list of blocks (str = paragraph)."""

    title: str
    blocks: list[Table | Image | str] = field(default_factory=list)


def fmt(value: object, digits: int = 3) -> str:
    """Format numbers to `digits` decimals, None/NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}"
    return str(value)


def to_markdown(title: str, sections: list[Section]) -> str:
    """Markdown twin of the page."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out.append("| " + " | ".join(b.header) + " |")
                out.append("| " + " | ".join("---" for _ in b.header) + " |")
                out += ["| " + " | ".join(r) + " |" for r in b.rows]
            elif isinstance(b, Image):
                out.append(f"![{b.caption}]({b.src})")
                out.append(f"*{b.caption}*")
            else:
                out.append(b)
            out.append("")
    return "\n".join(out)


CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
"""


def to_html(title: str, sections: list[Section]) -> str:
    """Self-contained HTML page (images referenced by relative path)."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in b.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Image):
                parts.append(
                    f"<figure><img src='{e(b.src)}' alt='{e(b.caption)}'><figcaption>{e(b.caption)}</figcaption></figure>"
                )
            else:
                parts.append(f"<p>{e(b)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
