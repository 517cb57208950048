"""Variable expansion and word rules, table-driven with the cases Docker's own lexer is tested against."""

from __future__ import annotations

import pytest

from imagetool.build.expand import ExpansionError, expand, expand_heredoc, split_words, unquote

ENV = {"PWD": "/home", "SHELL": "bash", "NULL": ""}

# word | expected ("error" means the word must be refused)
TABLE = r"""
hello                    | hello
he'll'o                  | hello
he'llo                   | error
he\'llo                  | he'llo
he\\'llo                 | error
abc\tdef                 | abctdef
"abc\tdef"               | abc\tdef
"abc\\tdef"              | abc\tdef
'abc\tdef'               | abc\tdef
hello\                   | hello
hello\\                  | hello\
"hello                   | error
"hello\"                 | error
"hel'lo"                 | hel'lo
'hello                   | error
'hello\'                 | hello\
'hello\there'            | hello\there
"''"                     | ''
$.                       | $.
he$1x                    | hex
he$.x                    | he$.x
he$pwd.                  | he.
he$PWD                   | he/home
he\$PWD                  | he$PWD
he\\$PWD                 | he\/home
"he\$PWD"                | he$PWD
"he\\$PWD"               | he\/home
\${}                     | ${}
he\${}xx                 | he${}xx
${}                      | error
he${}xx                  | error
he${hi}xx                | hexx
he${PWD}                 | he/home
he${.}                   | error
he${XXX:-000}xx          | he000xx
he${PWD:-000}xx          | he/homexx
he${XXX:-$PWD}xx         | he/homexx
he${XXX:-${PWD:-yyy}}xx  | he/homexx
he${XXX:-${YYY:-yyy}}xx  | heyyyxx
he${XXX:YYY}             | error
he${XXX?}                | error
he${XXX:?}               | error
he${PWD?}                | he/home
he${PWD:?}               | he/home
he${NULL?}               | he
he${NULL:?}              | error
he${NULL:-def}           | hedef
he${NULL-def}            | he
he${XXX-def}             | hedef
he${XXX:+${PWD}}xx       | hexx
he${PWD:+${XXX}}xx       | hexx
he${PWD:+${SHELL}}xx     | hebashxx
he${XXX:+000}xx          | hexx
he${PWD:+000}xx          | he000xx
he${NULL:+000}xx         | hexx
he${NULL+000}xx          | he000xx
'he${XX}'                | he${XX}
"he${PWD}"               | he/home
"he'$PWD'"               | he'/home'
"$PWD"                   | /home
'$PWD'                   | $PWD
'\$PWD'                  | \$PWD
'"hello"'                | "hello"
he${PWD                  | error
he${PWD=000}xx           | error
he${PWD+${PWD}:}xx       | he/home:xx
he${XXX+000}xx           | hexx
${XXX:-\$PWD:}xx         | $PWD:xx
${XXX:-\${PWD}z}xx       | ${PWDz}xx
${PWD:+\$}xx             | $xx
a b  c                   | a b  c
"""


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in TABLE.strip().splitlines():
        word, _, want = line.rpartition("|")
        rows.append((word.rstrip() if not word.startswith("a b") else "a b  c", want.strip()))
    return rows


@pytest.mark.parametrize("word,want", _rows())
def test_expand(word: str, want: str) -> None:
    if want == "error":
        with pytest.raises(ExpansionError):
            expand(word, ENV)
    else:
        assert expand(word, ENV) == want


@pytest.mark.parametrize("word,want", [
    ("he`$PWD", "he$PWD"),
    ("C:\\dir\\$SHELL", "C:\\dir\\bash"),
    ('"a`"b"', 'a"b'),
    ("``", "`"),
])
def test_backtick_escape(word: str, want: str) -> None:
    assert expand(word, ENV, escape="`") == want


def test_unquote_leaves_variables() -> None:
    assert unquote('"$PWD" \'x\' \\$y') == "$PWD x $y"


def test_heredoc_expansion_keeps_quotes() -> None:
    assert expand_heredoc("echo \"$SHELL\" '$PWD' \\$PWD ${NULL:-d}\n", ENV) == "echo \"bash\" '/home' $PWD d\n"


def test_unset_required_variable_message_names_it() -> None:
    with pytest.raises(ExpansionError, match="VERSION: must be given"):
        expand("${VERSION:?must be given}", {})


@pytest.mark.parametrize("text,words", [
    ('a b  c', ["a", "b", "c"]),
    ('k="a b" k2=c', ['k="a b"', "k2=c"]),
    ("k='a \" b' x", ["k='a \" b'", "x"]),
    ('a\\ b c', ["a\\ b", "c"]),
    ('"unterminated', None),
])
def test_split_words(text: str, words: list[str] | None) -> None:
    if words is None:
        with pytest.raises(ExpansionError):
            split_words(text)
    else:
        assert split_words(text) == words
