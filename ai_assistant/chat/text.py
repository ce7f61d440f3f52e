"""Text that every store, terminal and HTTP response can write. Python hands bytes it could not
decode (a Latin-1 file piped in, such an argument) on as lone surrogates, and JSON can carry
half of a surrogate pair (a broken upstream, a tool's output): UTF-8 cannot encode either. What
a user sends is refused with the place of the fault (nothing is stored or sent); what a model
or a tool answers is repaired, so the reply goes on."""

from __future__ import annotations

FIX_HINT = "convert it to UTF-8 first (for example `iconv -f LATIN1 -t UTF-8 FILE`)"


def unicode_fault(text: str) -> str | None:
    """What makes ``text`` impossible to write as UTF-8, or None: the first undecoded byte
    (a surrogate U+DC80..U+DCFF, as Python's ``surrogateescape`` makes) or lone surrogate."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code, at = ord(text[exc.start]), exc.start + 1
        if 0xDC80 <= code <= 0xDCFF:
            return f"not UTF-8 text: byte 0x{code - 0xDC00:02X} at character {at}"
        return f"not valid Unicode text: an unpaired surrogate U+{code:04X} at character {at}"
    return None


def repaired(text: str) -> str:
    """``text`` with each surrogate pair joined into its character and each lone surrogate
    replaced by U+FFFD (the replacement character)."""
    if unicode_fault(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
