"""Splitting a SQL file into statements: quotes, quoted identifiers, `E'...'` strings, dollar quoting and comments
are respected; each statement keeps the line of its first token (for the seed errors).

What a plain `pg_dump` writes besides SQL is read as psql reads it: the data lines after `COPY ... FROM stdin;` up to
a line `\\.` (or the end of the text) belong to that statement (`SqlStatement.data`), and a backslash where a
statement would start begins a psql meta-command that ends with its line (`SqlStatement.meta`); which meta-commands a
seed may hold is the loader's call (`seeds.py`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SNIPPET", "SqlStatement", "split_sql", "strip_leading_comments"]

SNIPPET = 60
"""characters of a statement shown in an error"""


@dataclass(frozen=True)
class SqlStatement:
    """One statement of a SQL file: its text (without the `;`) and the line where its first token is."""

    text: str
    line: int
    data: str | None = None
    """`COPY ... FROM stdin`: its data lines (each with its newline; without the `\\.` line), else None"""
    data_line: int = 0
    """the line of the first data line"""
    after_copy: str = ""
    """what follows `COPY ... FROM stdin;` on its line (the data start on the next line: psql would read it later)"""
    meta: bool = False
    """a psql meta-command (`\\connect db`): `text` is its line"""

    def describe(self, number: int) -> str:
        """`statement 3 (line 12) "INSERT INTO releases ..."`: how an error names it."""
        body = strip_leading_comments(self.text)
        flat = " ".join(body.split())
        if len(flat) > SNIPPET:
            flat = flat[: SNIPPET - 3] + "..."
        kind = "meta-command" if self.meta else "statement"
        return f'{kind} {number} (line {self.line}) "{flat}"'


_COPY_FROM_STDIN = re.compile(r"COPY\b.*\bFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
_DATA_END = "\n\\."
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_NON_BLANK = re.compile(r"\S")
_SPECIAL = re.compile(r"""--|/\*|[;'"$]""")  # what can open a comment, a literal or a body, or end a statement
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_ESCAPE_OR_QUOTE = re.compile(r"[\\']")


def _is_ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


class _LineCounter:
    """Line numbers of increasing offsets of one text, counted from the previous offset: linear over the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._offset = 0
        self._line = 1

    def line_of(self, offset: int) -> int:
        if offset < self._offset:
            raise ValueError(f"offsets must not decrease ({offset} after {self._offset})")
        self._line += self.text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line


def split_sql(text: str) -> list[SqlStatement]:
    """Split SQL text into statements at the `;` that are outside quotes, dollar quotes and comments.

    Handles `'...'` (with `''`), `E'...'` (with backslash escapes), `"..."` identifiers, `$$...$$` and
    `$tag$...$tag$` bodies, `-- ...` and nested `/* ... */` comments. Statements made only of comments are dropped.
    Linear in the length of the text: it jumps from one special character to the next (regular expressions and
    `str.find`), and line numbers are counted on from the previous statement's.
    """
    statements: list[SqlStatement] = []
    lines = _LineCounter(text)
    length = len(text)
    i = 0
    start = 0
    first_token: int | None = None  # offset of the first character that is neither blank nor comment
    while i < length:
        if first_token is None:
            blank_end = _NON_BLANK.search(text, i)
            if blank_end is None:
                break
            i = blank_end.start()
            if text.startswith(("--", "/*"), i):
                i = _skip_comment(text, i)
                continue
            if text[i] == ";":  # an empty statement
                i += 1
                start = i
                continue
            if text[i] == "\\":  # a psql meta-command: to the end of its line
                i = start = _read_meta(statements, lines, i)
                continue
            first_token = i
        special = _SPECIAL.search(text, i)
        if special is None:
            break
        i = special.start()
        token = special.group()
        if token in ("--", "/*"):
            i = _skip_comment(text, i)
        elif token == ";":
            _add_statement(statements, lines, start, i, first_token)
            i += 1
            if _is_copy_from_stdin(statements[-1]):  # the statement just added
                i = _read_copy_data(statements, lines, i)
            start = i
            first_token = None
        elif token == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_ident_char(text[i - 2]))
            i = _skip_quoted(text, i, "'", backslash=escapes)
        elif token == '"':
            i = _skip_quoted(text, i, '"', backslash=False)
        else:
            i = _skip_dollar(text, i)
    _add_statement(statements, lines, start, length, first_token)
    return statements


def _skip_dollar(text: str, i: int) -> int:
    """The offset after the dollar-quoted body that opens at `i`, or after the `$` of `$1` or `a$b`."""
    if i > 0 and _is_ident_char(text[i - 1]):
        return i + 1  # "$" inside an identifier
    match = _DOLLAR_TAG.match(text, i)
    if not match:
        return i + 1  # $1: a positional parameter
    close = text.find(match.group(0), match.end())
    return len(text) if close < 0 else close + len(match.group(0))


def _read_meta(statements: list[SqlStatement], lines: _LineCounter, i: int) -> int:
    """The psql meta-command that starts at `i`, to the end of its line; returns the offset of that end."""
    end = lines.text.find("\n", i)
    end = len(lines.text) if end < 0 else end
    statements.append(SqlStatement(lines.text[i:end].strip(), lines.line_of(i), meta=True))
    return end


def _is_copy_from_stdin(statement: SqlStatement) -> bool:
    return (
        statement.data is None
        and not statement.meta
        and bool(_COPY_FROM_STDIN.match(strip_leading_comments(statement.text)))
    )


def _read_copy_data(statements: list[SqlStatement], lines: _LineCounter, i: int) -> int:
    """The data of the COPY statement just added (its `;` ends at `i`), as psql reads them: from the next line to a
    line `\\.` (or the end of the text); returns the offset after that line."""
    text = lines.text
    length = len(text)
    line_end = text.find("\n", i)
    line_end = length if line_end < 0 else line_end
    after = text[i:line_end].strip()
    begin = min(line_end + 1, length)
    if text.startswith("\\.", begin) and text[begin + 2 : begin + 3] in ("", "\n", "\r"):
        end = stop = begin  # no data lines
    else:
        end = begin - 1
        while True:
            end = text.find(_DATA_END, end + 1)
            if end < 0 or text[end + 3 : end + 4] in ("", "\n", "\r"):
                break
        stop = length if end < 0 else end + 1  # the data keep the newline of their last line
        end = length if end < 0 else end + 1
    copy = statements[-1]
    statements[-1] = SqlStatement(
        copy.text, copy.line, data=text[begin:stop], data_line=lines.line_of(begin), after_copy=after
    )
    after_end = text.find("\n", end)
    return length if end >= length or after_end < 0 else after_end + 1


def _skip_comment(text: str, i: int) -> int:
    """The offset after the `--` or `/* */` comment that starts at `i`."""
    if text.startswith("--", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end + 1
    return _skip_block_comment(text, i)


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    """The offset after the literal or identifier opened at `i` (or the end of the text when unterminated)."""
    i += 1
    length = len(text)
    while True:
        if backslash:
            found = _ESCAPE_OR_QUOTE.search(text, i)
            j = found.start() if found is not None else -1
        else:
            j = text.find(quote, i)
        if j < 0:
            return length
        if text[j] == "\\":  # only searched for in E'...' literals: the next character is escaped
            i = j + 2
            continue
        if j + 1 < length and text[j + 1] == quote:  # doubled quote
            i = j + 2
            continue
        return j + 1


def _skip_block_comment(text: str, i: int) -> int:
    """The offset after the (nested) block comment that opens at `i`, or the end of the text when unterminated."""
    depth = 0
    while True:
        edge = _BLOCK_EDGE.search(text, i)
        if edge is None:
            return len(text)
        depth += 1 if edge.group() == "/*" else -1
        i = edge.end()
        if depth == 0:
            return i


def _add_statement(
    statements: list[SqlStatement], lines: _LineCounter, start: int, end: int, first: int | None
) -> None:
    """Add text[start:end] (`lines.text`) when it holds more than blanks and comments; its line is `first`'s."""
    if first is None:
        return
    body = lines.text[start:end].strip()
    if body:
        statements.append(SqlStatement(body, lines.line_of(first)))


def strip_leading_comments(text: str) -> str:
    rest = text.lstrip()
    while rest.startswith(("--", "/*")):
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1 :]
        else:
            rest = rest[_skip_block_comment(rest, 0) :]
        rest = rest.lstrip()
    return rest
