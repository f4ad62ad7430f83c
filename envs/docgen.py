"""Small, deterministic office documents for seeding servers (stdlib only).

Scenario files such as ``Q4_financial_report.xlsx`` or ``hr_policies_handbook.pdf`` must be real
documents: an agent may run ``file``, ``unzip -l`` or a Python one-liner on them, and a broken or obviously
synthetic file would give the setting away. These builders produce minimal but valid files, byte-for-byte
identical for the same input, so that the seeded state (and its baseline hashes) is reproducible.

- :func:`make_xlsx` writes an Office Open XML workbook with one sheet, inline strings and numbers. Zip entry
  timestamps are fixed at 1980-01-01 00:00, which is also what Excel itself writes.
- :func:`make_pdf` writes a PDF 1.4 file with the text in Helvetica on as many US Letter pages as needed,
  content streams Flate-compressed, with an exact cross-reference table.
"""

from __future__ import annotations

import csv
import io
import math
import re
import textwrap
import zipfile
import zlib
from xml.sax.saxutils import escape

__all__ = ["make_pdf", "make_xlsx"]

Cell = str | int | float | None

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Characters XML 1.0 forbids; Excel refuses a workbook that contains them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SHEET_NAME_ILLEGAL = re.compile(r"[\[\]:*?/\\]")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/>'
    "</Relationships>"
)
# Excel opens a workbook without styles.xml, but some readers warn; one default style keeps all quiet.
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def column_letter(index: int) -> str:
    """Return the spreadsheet column name for a zero-based index (0 -> "A", 26 -> "AA").

    Raises:
        ValueError: if ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"column index must be >= 0, got {index}")
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def _xml_text(value: str, where: str) -> str:
    if _XML_ILLEGAL.search(value):
        raise ValueError(f"{where}: text contains a control character that XML cannot hold: {value!r}")
    return escape(value)


def _cell_xml(ref: str, value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cell {ref}: {value!r} cannot be stored in a workbook")
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    if isinstance(value, str):
        text = _xml_text(value, f"cell {ref}")
        space = ' xml:space="preserve"' if value != value.strip() else ""
        return f'<c r="{ref}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
    raise TypeError(f"cell {ref}: unsupported type {type(value).__name__} (use str, int or float)")


def _sheet_xml(rows: list[list[Cell]]) -> str:
    width = max((len(row) for row in rows), default=0)
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n',
        f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">',
    ]
    if rows and width:
        parts.append(f'<dimension ref="A1:{column_letter(width - 1)}{len(rows)}"/>')
    parts.append("<sheetData>")
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell_xml(f"{column_letter(c)}{r}", v) for c, v in enumerate(row))
        parts.append(f'<row r="{r}">{cells}</row>')
    parts.append("</sheetData></worksheet>")
    return "".join(parts)


def make_csv(rows: list[list[Cell]]) -> bytes:
    """Rows as CSV text (RFC 4180 quoting, ``\n`` line ends as a spreadsheet export on Linux writes them)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def make_xlsx(rows: list[list[Cell]], sheet_name: str = "Sheet1") -> bytes:
    """Build a one-sheet .xlsx workbook.

    Args:
        rows: the cells row by row; ``str`` becomes an inline string, ``int``/``float`` a number, ``bool`` a
            boolean and ``None`` an empty cell. Rows may have different lengths.
        sheet_name: the tab name (1-31 characters, none of ``[ ] : * ? / \\``).

    Returns:
        The workbook bytes; identical for identical input.

    Raises:
        ValueError: for an invalid sheet name, a non-finite float or text with XML-illegal control characters.
        TypeError: for a cell of another type.
    """
    if not 1 <= len(sheet_name) <= 31 or _SHEET_NAME_ILLEGAL.search(sheet_name):
        raise ValueError(f"invalid sheet name {sheet_name!r}: 1-31 characters, none of []:*?/\\")
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>'
        f'<sheet name="{_xml_text(sheet_name, "sheet name")}" sheetId="1" r:id="rId1"/>'
        "</sheets></workbook>"
    )
    # Order matters to `file`/libmagic: [Content_Types].xml first, then a part under xl/ soon after.
    members = [
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("_rels/.rels", _ROOT_RELS),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
        ("xl/styles.xml", _STYLES),
        ("xl/worksheets/sheet1.xml", _sheet_xml(rows)),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            info.create_system = 0  # MS-DOS, as Excel writes it; also keeps bytes host-independent
            zf.writestr(info, text.encode("utf-8"), compresslevel=6)
    return buf.getvalue()


# --- PDF -------------------------------------------------------------------------------------------------

_PAGE_W, _PAGE_H = 612, 792  # US Letter, points
_MARGIN = 72
_FONT_SIZE = 10
_LEADING = 13
_WRAP = 92  # characters per line: ~468 pt of usable width at Helvetica 10 pt
_LINES_PER_PAGE = (_PAGE_H - 2 * _MARGIN) // _LEADING


def _pdf_string(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _layout(text: str) -> list[list[str]]:
    """Split text into pages of wrapped lines; a form feed forces a new page."""
    pages: list[list[str]] = []
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\f"):
        lines: list[str] = []
        for para in block.expandtabs(4).split("\n"):
            wrapped = textwrap.wrap(para, _WRAP, replace_whitespace=False, drop_whitespace=True)
            lines.extend(wrapped or [""])
        while lines and lines[-1] == "":
            lines.pop()
        for i in range(0, max(len(lines), 1), _LINES_PER_PAGE):
            pages.append(lines[i : i + _LINES_PER_PAGE])
    return pages


def _content_stream(lines: list[str]) -> bytes:
    out = [b"BT", b"/F1 %d Tf" % _FONT_SIZE, b"%d TL" % _LEADING, b"%d %d Td" % (_MARGIN, _PAGE_H - _MARGIN)]
    for line in lines:
        out.append(b"(" + _pdf_string(line) + b") Tj T*")
    out.append(b"ET")
    return b"\n".join(out) + b"\n"


def make_pdf(text: str) -> bytes:
    """Build a PDF 1.4 document showing ``text`` in Helvetica 10 pt.

    Lines are wrapped at about 92 characters and flow onto further US Letter pages as needed; a form feed
    (``\\f``) starts a new page. Characters outside Windows-1252 are shown as ``?``.

    Returns:
        The PDF bytes; identical for identical input (no creation date, fixed compression level).
    """
    pages = _layout(text)
    n_pages = len(pages)
    # Object numbers: 1 catalog, 2 page tree, 3 font, 4 info, then (page, content) pairs.
    page_ids = [5 + 2 * i for i in range(n_pages)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % p for p in page_ids), n_pages),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Producer (DocService 2.3) >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        stream = zlib.compress(_content_stream(lines), 9)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (_PAGE_W, _PAGE_H, page_id + 1)
        )
        objects[page_id + 1] = (
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"
        )

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for num in sorted(objects):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref_at = len(out)
    size = len(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref_at)
    return bytes(out)
