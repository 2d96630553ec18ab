"""Known syntax mistakes, as lark's `match_examples` table: message -> bad snippets.

When a parse fails, lark replays these snippets and picks the message whose snippet fails in the
same parser state, so the user reads the likely mistake instead of "unexpected token". Each
snippet must fail to parse (tests/test_syntax_errors.py checks every one and its message).
"""
from __future__ import annotations

OUTSIDE_MODEL = "a declaration must be inside a model: `model NAME { ... }`"
# Top-level parser states are many (one after each kind of declaration's end), so this mistake
# is also recognised without an example: the parser wants only top-level keywords and got a
# name or a model-only keyword (parser._syntax_error).
TOP_LEVEL_TERMINALS = frozenset({"MODEL", "CONST", "OPTIMIZER", "SWEEP", "$END"})
MODEL_ITEM_TERMINALS = frozenset({"NAME", "LEVEL", "MEMORY", "CMS", "FLOW", "TRANSFER", "REMOVE"})

KNOWN_MISTAKES: dict[str, list[str]] = {
    "missing `=` between an option and its value": [
        "model m { memory a in l { rule dgd } }",
        "model m { dim 512 }",
        "const D 512",
    ],
    "`:` where `=` was meant (options are written `name = value`)": [
        "model m { memory a in l { rule: dgd } }",
        "model m { dim: 512 }",
    ],
    "a level needs a frequency: `every N`, `token`, `sequence`, `step` or `frozen`": [
        "model m { level fast }",
        "model m { level fast 16 }",
        "model m { level fast every }",
        "model m { level fast = 16 }",
    ],
    "a memory needs a level: `memory NAME in LEVEL { ... }`": [
        "model m { memory a { rule = dgd } }",
        "model m { memory a }",
    ],
    "a memory's options go in braces: `memory NAME in LEVEL { ... }`": [
        "model m { memory a in l }",
        "model m { memory a in l rule = dgd }",
    ],
    "a transfer needs a kind: `transfer A -> B : init` (condition, backprop, init or generate)": [
        "model m { transfer a -> b }",
        "model m { transfer a -> b : }",
    ],
    "a flow is a chain of names joined by `->`": [
        "model m { flow }",
        "model m { flow x }",
        "model m { flow x -> }",
        "model m { flow x => y }",
    ],
    "a model needs a name and braces: `model NAME { ... }`": [
        "model { }",
        "model m",
        "model m dim = 1",
    ],
    OUTSIDE_MODEL: [
        "level fast every 16",
        "memory a in l { }",
        "flow x -> a",
        "transfer a -> b : init",
        "dim = 512",
    ],
    "an option value is missing after `=`": [
        "model m { dim = }",
        "model m { memory a in l { rule = } }",
        "const D =",
    ],
    "two values in a row: is a `,` or an operator missing?": [
        "model m { levels = [a b] }",
        "model m { memory a in l { shape = mlp(hidden = 2x 3) } }",
    ],
    "`extends` takes a stock spec name or a quoted path": [
        "model m extends { }",
        "model m extends 3 { }",
    ],
}

# lark terminal names -> words a user knows
_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "MULTIPLE": "a width like `4x`",
    "STRING": "a quoted string", "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`",
    "LSQB": "`[`", "RSQB": "`]`", "EQUAL": "`=`", "COLON": "`:`", "COMMA": "`,`",
    "SEMICOLON": "`;`", "__ANON_0": "`->`", "MINUS": "`-`", "PLUS": "`+`", "STAR": "`*`",
    "SLASH": "`/`", "DOT": "`.`", "$END": "the end of the file",
}


def describe_expected(expected) -> str:
    """Turn a set of terminal names into 'expected `=` or a name'."""
    words = []
    for term in sorted(expected or ()):
        word = _WORDS.get(term)
        if word is None:
            word = f"`{term.lower()}`" if term.isupper() and term.isalpha() else None
        if word and word not in words:
            words.append(word)
    if not words:
        return "check the line against docs/language.md"
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "expected " + (" or ".join(words) if len(words) <= 2 else ", ".join(words))
