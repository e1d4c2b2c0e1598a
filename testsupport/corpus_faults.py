"""Files no reader can use: random binary and an encrypted PDF (ingest's rejection tests)."""

from __future__ import annotations

import io
import random

from pypdf import PdfWriter


def noise(seed: int) -> bytes:
    """Random bytes without NUL: binary that the NUL check does not catch."""
    return bytes(b for b in random.Random(seed).randbytes(400) if b)


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
