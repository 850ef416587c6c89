"""The text of a DOCX file, read from its XML in one streaming pass.

python-docx looked up each paragraph's style through its style objects, ~1.3 ms a paragraph:
an 88 KB DOCX of 500,000 empty paragraphs took 244 s. Here the body is streamed with lxml
(each paragraph and table handled, then dropped), a paragraph's style is one attribute looked
up in a dict made once from ``styles.xml``, and the document's XML is refused unread when it
unpacks to more than the file size limit (a small zip can hold gigabytes of XML). Blocks are
what python-docx's reading gave: the body's paragraphs and tables in order, numbered from 1
("lines" are these numbers), headings (styles Title and Heading N) carried as heading paths.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from chatapp.retrieval.ingest.file_opening import SkipFile
from chatapp.retrieval.ingest.markup import Block

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_BODY, _P, _TBL, _TR, _TC = (f"{_W}{t}" for t in ("body", "p", "tbl", "tr", "tc"))
_T, _TAB, _BR, _CR = (f"{_W}{t}" for t in ("t", "tab", "br", "cr"))
_VAL, _TYPE = f"{_W}val", f"{_W}type"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_OFFICE_DOCUMENT = "/officeDocument"
_SIZE_TEXT = "{:.0f} MB"


def docx_blocks(data: bytes, max_xml_bytes: int) -> list[Block]:
    """The blocks of a DOCX file's body; raises SkipFile for a broken file or one whose XML
    unpacks to more than ``max_xml_bytes``."""
    from lxml import etree

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        document = archive.getinfo(_main_part(archive, max_xml_bytes))
        _check_size(document, max_xml_bytes)
        levels = _heading_levels(archive, max_xml_bytes)
        with archive.open(document) as stream:
            return list(_body_blocks(etree, stream, levels))
    except SkipFile:
        raise
    except Exception as exc:  # zipfile, lxml and KeyError for missing parts
        message = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise SkipFile(f"malformed DOCX ({message})") from None


def _check_size(info: zipfile.ZipInfo, limit: int) -> None:
    if info.file_size > limit:
        size, most = (_SIZE_TEXT.format(n / 1024 / 1024) for n in (info.file_size, limit))
        raise SkipFile(
            f"too large unpacked ({info.filename} is {size} of XML > {most} limit; --max-file-mb)"
        )


def _parse(archive: zipfile.ZipFile, name: str, limit: int) -> Any:
    from lxml import etree

    info = archive.getinfo(name)
    _check_size(info, limit)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(archive.read(info), parser)


def _main_part(archive: zipfile.ZipFile, limit: int) -> str:
    """The document part named by the package's relationships (``word/document.xml``)."""
    try:
        rels = _parse(archive, "_rels/.rels", limit)
    except KeyError:
        return "word/document.xml"
    for rel in rels.iter(_RELS):
        if rel.get("Type", "").endswith(_OFFICE_DOCUMENT):
            return str(rel.get("Target", "")).lstrip("/")
    return "word/document.xml"


def _heading_levels(archive: zipfile.ZipFile, limit: int) -> dict[str, int]:
    """Paragraph style id -> heading level, for the styles that are headings."""
    try:
        styles = _parse(archive, "word/styles.xml", limit)
    except KeyError:
        return {}
    levels: dict[str, int] = {}
    for style in styles.iter(f"{_W}style"):
        name = style.find(f"{_W}name")
        style_id = style.get(f"{_W}styleId")
        if name is not None and style_id:
            level = heading_level(str(name.get(_VAL, "")))
            if level:
                levels[style_id] = level
    return levels


def heading_level(style_name: str) -> int:
    """1 for Title, N for Heading N (any case: styles.xml keeps built-in names lower-case),
    0 for anything else."""
    name = style_name.strip().lower()
    if name == "title":
        return 1
    if name.startswith("heading"):
        digits = name.removeprefix("heading").strip()
        return int(digits) if digits.isdigit() else 1
    return 0


def _body_blocks(etree: Any, stream: Any, levels: dict[str, int]) -> Iterator[Block]:
    path: list[tuple[int, str]] = []
    number = 0
    events = etree.iterparse(
        stream, events=("end",), resolve_entities=False, no_network=True, load_dtd=False
    )
    for _, element in events:
        parent = element.getparent()
        if parent is None or parent.tag != _BODY:
            continue
        if element.tag in (_P, _TBL):
            number += 1
            if element.tag == _TBL:
                text, kind, level = _table_text(element), "table", 0
            else:
                text, kind, level = (
                    _paragraph_text(element).strip(),
                    "text",
                    _level(element, levels),
                )
            if level and text:
                path = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
                kind = "heading"
            if text:
                yield Block(text, number, number, kind, tuple(t for _, t in path))
        # Done with it: drop it and what came before, so memory stays flat however long.
        element.clear()
        while element.getprevious() is not None:
            del parent[0]


def _level(paragraph: Any, levels: dict[str, int]) -> int:
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    if style is None:
        return 0
    style_id = str(style.get(_VAL, ""))
    return levels.get(style_id, heading_level(style_id))  # an undefined id by its name


def _paragraph_text(paragraph: Any) -> str:
    """The paragraph's runs as python-docx reads them (tabs and line breaks kept), without
    the paragraphs of text boxes nested in it."""
    parts: list[str] = []
    for element in paragraph.iter(_T, _TAB, _BR, _CR):
        if next(element.iterancestors(_P), None) is not paragraph:
            continue
        if element.tag == _T:
            parts.append(element.text or "")
        elif element.tag == _TAB:
            parts.append("\t")
        elif element.tag == _CR or element.get(_TYPE) in (None, "textWrapping"):
            parts.append("\n")
    return "".join(parts)


def _table_text(table: Any) -> str:
    rows = []
    for row in table.findall(_TR):
        cells = [
            "\n".join(_paragraph_text(p) for p in cell.findall(_P)).strip()
            for cell in row.findall(_TC)
        ]
        rows.append(" | ".join(cells))
    return "\n".join(r for r in rows if r.strip(" |"))
