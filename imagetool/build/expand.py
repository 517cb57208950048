"""Dockerfile words: quote-aware splitting and variable expansion with Docker's rules.

Docker's shell lexer is not a shell: it knows single and double quotes, the escape
character (`\\` or the one named by `# escape=`), `$VAR`, `${VAR}` and the modifiers
`${VAR:-word}`, `${VAR:+word}`, `${VAR:?msg}` (and their colon-less forms, which test
"set" rather than "set and not empty"). Unset variables expand to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagetool.errors import BuildError

_NAME_FIRST = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_FIRST | set("0123456789")


class ExpansionError(BuildError):
    """A word that does not expand (bad substitution, unterminated quote, ${VAR:?} on unset)."""


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, expand: bool = True,
                 quotes: bool = True) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.expand = expand
        self.quotes = quotes

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def word(self, stop: str = "") -> str:
        """Process until `stop` (not consumed) or the end; quotes removed, variables expanded."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch or (stop and ch == stop):
                return "".join(out)
            self.pos += 1
            if ch == "'" and self.quotes:
                out.append(self._single_quoted())
            elif ch == '"' and self.quotes:
                out.append(self._double_quoted())
            elif ch == "$" and self.expand:
                out.append(self._dollar())
            elif ch == self.escape:
                nxt = self.next()
                out.append(nxt)
            else:
                out.append(ch)

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ExpansionError("unexpected end of statement while looking for matching single-quote")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                return "".join(out)
            if ch == "$" and self.expand:
                out.append(self._dollar())
            elif ch == self.escape:
                nxt = self.next()
                if nxt in ('"', "$", self.escape):
                    out.append(nxt)
                else:
                    out.append(ch + nxt)
            else:
                out.append(ch)

    def _name(self) -> str:
        ch = self.peek()
        if ch.isdigit():  # positional parameters are one digit long
            self.pos += 1
            return ch
        start = self.pos
        while self.peek() and self.peek() in _NAME_REST:
            self.pos += 1
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        ch = self.peek()
        if ch != "{":
            if ch and (ch in _NAME_FIRST or ch.isdigit()):
                return self.env.get(self._name(), "")
            return "$"
        self.pos += 1
        name = self._name()
        if not name:
            raise ExpansionError(f"bad substitution in {self.text!r}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise ExpansionError(f"unsupported modifier ({ch or 'end of word'}) in substitution "
                                 f"${{{name}...}}")
        word = self.word(stop="}")
        if self.next() != "}":
            raise ExpansionError(f"missing closing brace in substitution ${{{name}...")
        value = self.env.get(name)
        present = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if present else word  # type: ignore[return-value]
        if ch == "+":
            return word if present else ""
        if not present:
            reason = word or ("is empty or not set" if colon else "is not set")
            raise ExpansionError(f"{name}: {reason}")
        return value  # type: ignore[return-value]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One Dockerfile word with quotes removed and variables replaced (what COPY, ENV, ... see)."""
    return _Lexer(word, env, escape).word()


def unquote(word: str, escape: str = "\\") -> str:
    """Quote removal without expansion (instructions that Docker does not expand)."""
    return _Lexer(word, {}, escape, expand=False).word()


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Heredoc content with an unquoted delimiter: variables expand, quotes stay as written."""
    out: list[str] = []
    lexer = _Lexer(text, env, escape, quotes=False)
    while True:
        ch = lexer.next()
        if not ch:
            return "".join(out)
        if ch == "$":
            out.append(lexer._dollar())
        elif ch == escape and lexer.peek() in ("$", escape):
            out.append(lexer.next())
        else:
            out.append(ch)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split at unquoted, unescaped white space; quotes and escapes stay in the words."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == escape and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            in_word = True
            cur.append(ch)
            if ch in ("'", '"'):
                quote = ch
            elif ch == escape and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
        i += 1
    if quote:
        raise ExpansionError(f"unmatched {quote} quote in {text!r}")
    if in_word:
        words.append("".join(cur))
    return words
