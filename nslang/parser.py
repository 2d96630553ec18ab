"""Text -> syntax tree. Reading guards, the lark LALR parser, and syntax diagnostics."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, \
    UnexpectedToken

from . import syntax as S
from .diagnostics import Diagnostics
from .source import Source
from .syntax_errors import KNOWN_MISTAKES, MODEL_ITEM_TERMINALS, OUTSIDE_MODEL, \
    TOP_LEVEL_TERMINALS, describe_expected

MAX_BYTES = 1_000_000  # a spec is a page of text; anything near this is not a spec
MAX_NESTING = 64       # brackets deep enough to be machine-made, not written
MAX_TREE_DEPTH = 200   # syntax-tree depth (long `1 + 1 + ...` chains nest without brackets)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def read_source(path: Path, diags: Diagnostics) -> Source | None:
    """Read a spec file, turning every way a file can be unreadable into a diagnostic."""
    name = str(path)
    try:
        if path.is_dir():
            diags.error("NS003", f"`{name}` is a directory, not a .nsam file",
                        hint="pass the path of a .nsam file")
            return None
        size = path.stat().st_size
        if size > MAX_BYTES:
            diags.error("NS004", f"`{name}` is {size / 1e6:.1f} MB; a spec may be at most "
                        f"{MAX_BYTES // 1_000_000} MB", hint="is this the right file?")
            return None
        raw = path.read_bytes()
    except FileNotFoundError:
        diags.error("NS003", f"no such file: `{name}`", hint="check the path (relative paths are "
                    "taken from the current directory)")
        return None
    except OSError as err:
        diags.error("NS003", f"cannot read `{name}`: {err.strerror or err}")
        return None
    if b"\x00" in raw:
        diags.error("NS003", f"`{name}` is a binary file, not a .nsam spec",
                    hint="a spec is UTF-8 text")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        diags.error("NS003", f"`{name}` is not valid UTF-8 (byte {err.start})",
                    hint="save the file as UTF-8")
        return None
    return Source(name, text.lstrip("\ufeff"))


def parse_source(src: Source, diags: Diagnostics) -> S.File | None:
    """Parse one source; on a syntax error add one diagnostic naming the likely mistake."""
    if not src.text.strip():
        diags.error("NS001", f"`{src.name}` is empty", span=src.span(0, 0),
                    hint="a spec declares at least one `model NAME { ... }`")
        return None
    if not _nesting_ok(src, diags):
        return None
    try:
        tree = _parser().parse(src.text)
    except UnexpectedInput as err:
        _syntax_error(src, err, diags)
        return None
    if not _depth_ok(src, tree, diags):
        return None
    return _ToSyntax(src).transform(tree)


def _depth_ok(src: Source, tree: Tree, diags: Diagnostics) -> bool:
    """Evaluation and later stages recurse over values; a machine-made chain such as
    `1 + 1 + ... + 1` nests one level per operator without any bracket, so bound the depth here
    (iteratively) instead of letting Python's recursion limit fail later."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            start = 0 if getattr(meta, "empty", True) else meta.start_pos
            diags.error("NS004", f"expression nested more than {MAX_TREE_DEPTH} deep",
                        span=src.span(start, start + 1), hint="split it up with `const`s; is the "
                        "file machine-generated?")
            return False
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return True


_BRACKETS = re.compile(r'#[^\n]*|"[^"\n]*"|[{}\[\]()]')  # comments and strings are skipped


def _nesting_ok(src: Source, diags: Diagnostics) -> bool:
    depth = 0
    for m in _BRACKETS.finditer(src.text):
        ch, i = m.group(), m.start()
        if ch in "{[(":
            depth += 1
            if depth > MAX_NESTING:
                diags.error("NS004", f"brackets nested more than {MAX_NESTING} deep",
                            span=src.span(i, i + 1), hint="a spec needs at most a few levels of "
                            "nesting; is the file machine-generated?")
                return False
        elif ch in "}])":
            depth -= 1
    return True


def _syntax_error(src: Source, err: UnexpectedInput, diags: Diagnostics) -> None:
    pos = err.pos_in_stream if err.pos_in_stream is not None else len(src.text)
    if isinstance(err, UnexpectedEOF):
        pos = len(src.text.rstrip())
    mistake = _match_mistake(err)
    if mistake is None and isinstance(err, UnexpectedToken) and \
            err.token.type in MODEL_ITEM_TERMINALS and set(err.expected) <= TOP_LEVEL_TERMINALS:
        mistake = OUTSIDE_MODEL
    if isinstance(err, UnexpectedCharacters):
        ch = src.text[pos]
        shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}"
        message = mistake or f"unexpected character {shown}"
        diags.error("NS002" if not mistake else "NS001", message, span=src.span(pos, pos + 1),
                    hint=describe_expected(err.allowed))
        return
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok = err.token
        message = mistake or f"unexpected `{tok}`"
        diags.error("NS001", message, span=src.span(tok.start_pos, tok.end_pos),
                    hint=describe_expected(err.expected))
        return
    expected = getattr(err, "expected", None) or set()
    message = mistake or "the file ends in the middle of a declaration"
    diags.error("NS001", message, span=src.span(pos, pos + 1),
                hint=describe_expected(expected) + "; is a `}` missing?")


@lru_cache(maxsize=1)
def _mistake_errors() -> list[tuple[str, UnexpectedInput, object, object]]:
    """Each KNOWN_MISTAKES snippet's parse error with its parser state and accepted terminals,
    computed once (a snippet that parses is skipped here; tests/test_syntax_errors.py reports
    it)."""
    out = []
    for label, snippets in KNOWN_MISTAKES.items():
        for snippet in snippets:
            try:
                _parser().parse(snippet)
            except UnexpectedInput as ut:
                accepts = ut.accepts if isinstance(ut, UnexpectedToken) else None
                out.append((label, ut, _state_id(ut.state), accepts))
    return out


def _state_id(state):
    """The LALR state on top of the parser's stack. lark's ParserState equality also compares
    the stack depth, so a mistake would only be recognised as a model's first item."""
    return getattr(state, "position", state)


def _match_mistake(err: UnexpectedInput) -> str | None:
    """lark's `match_examples(use_accepts=True)`, comparing only the top parser state (see
    _state_id), and without its debug line that formats a ParserState with `%d` (a TypeError
    whenever states match but accepts differ)."""
    candidate = None
    state = _state_id(err.state)
    for label, ut, ut_state, ut_accepts in _mistake_errors():
        if ut_state != state:
            continue
        if isinstance(err, UnexpectedToken) and isinstance(ut, UnexpectedToken) and \
                ut_accepts != err.accepts:
            continue
        if isinstance(err, (UnexpectedToken, UnexpectedEOF)) and \
                isinstance(ut, (UnexpectedToken, UnexpectedEOF)) and ut.token == err.token:
            return label
        if candidate is None:
            candidate = label
    return candidate


def _name(src: Source, tok: Token) -> S.Name:
    return S.Name(str(tok), src.span(tok.start_pos, tok.end_pos))


class _ToSyntax:
    """lark tree -> syntax dataclasses, attaching a span to every node.

    Each method is `rule(meta, children)`, called bottom-up by `transform`: an explicit-stack
    walk (not lark's Transformer, which recurses and wraps every call; this is twice as fast)."""

    def __init__(self, src: Source):
        self.src = src

    def transform(self, tree: Tree):
        out: list = []
        stack: list = [(tree, False)]
        while stack:
            node, ready = stack.pop()
            if not isinstance(node, Tree):
                out.append(node)  # a token, or None for an absent optional
            elif ready:
                n = len(node.children)
                children = out[len(out) - n:]
                del out[len(out) - n:]
                out.append(getattr(self, node.data)(node.meta, children))
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
        return out[0]

    def _span(self, meta):
        if getattr(meta, "empty", True):
            return self.src.span(0, 0)
        return self.src.span(meta.start_pos, meta.end_pos)

    # values
    def number(self, meta, c):
        text = str(c[0])
        try:
            value = float(text) if any(ch in text for ch in ".eE") else int(text)
        except ValueError:  # more digits than int() converts: as a float it is inf, and
            value = float(text)  # `evaluate` reports it as too large
        return S.Num(value, self._span(meta))

    def multiple(self, meta, c):
        return S.Multiple(float(str(c[0])[:-1]), self._span(meta))

    def string(self, meta, c):
        return S.Str(str(c[0])[1:-1], self._span(meta))

    def true(self, meta, c):
        return S.Bool(True, self._span(meta))

    def false(self, meta, c):
        return S.Bool(False, self._span(meta))

    def dotted(self, meta, c):
        return S.Sym(tuple(str(t) for t in c), self._span(meta))

    def symbol(self, meta, c):
        return c[0]

    def call(self, meta, c):
        args = [a for a in c[1:] if a is not None]
        pos = tuple(a[1] for a in args if a[0] == "pos")
        kw = tuple((a[1], a[2]) for a in args if a[0] == "kw")
        return S.Call(c[0], pos, kw, self._span(meta))

    def positional(self, meta, c):
        return ("pos", c[0])

    def keyword(self, meta, c):
        return ("kw", _name(self.src, c[0]), c[1])

    def list(self, meta, c):
        return S.ListV(tuple(v for v in c if v is not None), self._span(meta))

    def neg(self, meta, c):
        return S.Neg(c[0], self._span(meta))

    def _bin(op):
        def build(self, meta, c):
            return S.BinOp(op, c[0], c[1], self._span(meta))
        return build

    add, sub, mul, div = _bin("+"), _bin("-"), _bin("*"), _bin("/")

    # declarations
    def const_decl(self, meta, c):
        return S.ConstDecl(_name(self.src, c[0]), c[1], self._span(meta))

    def option(self, meta, c):
        return S.Option(_name(self.src, c[0]), c[1], self._span(meta))

    def block(self, meta, c):
        return tuple(c)

    def setting(self, meta, c):
        return S.Setting(c[0], c[1], self._span(meta))

    def level_decl(self, meta, c):
        kind, period = c[1]
        return S.LevelDecl(_name(self.src, c[0]), kind, period, self._span(meta))

    def every(self, meta, c):
        return ("every", c[0])

    def per_token(self, meta, c):
        return ("token", None)

    def per_sequence(self, meta, c):
        return ("sequence", None)

    def per_step(self, meta, c):
        return ("step", None)

    def frozen(self, meta, c):
        return ("frozen", None)

    def name_list(self, meta, c):
        return tuple(_name(self.src, t) for t in c)

    def memory_decl(self, meta, c):
        return S.MemoryDecl(c[0], _name(self.src, c[1]), c[2], self._span(meta))

    def cms_decl(self, meta, c):
        return S.CmsDecl(_name(self.src, c[0]), c[1], self._span(meta))

    def flow_decl(self, meta, c):
        return S.FlowDecl(tuple(_name(self.src, t) for t in c), self._span(meta))

    def transfer_kind(self, meta, c):
        args = [a for a in c[1:] if a is not None]
        return (_name(self.src, c[0]), tuple(a[1] for a in args if a[0] == "pos"),
                tuple((a[1], a[2]) for a in args if a[0] == "kw"))

    def transfer_decl(self, meta, c):
        kind, args, kwargs = c[2]
        return S.TransferDecl(_name(self.src, c[0]), _name(self.src, c[1]), kind, args, kwargs,
                              self._span(meta))

    def optimizer_decl(self, meta, c):
        level = _name(self.src, c[1]) if c[1] is not None else None
        kind = _name(self.src, c[2]) if c[2] is not None else None
        return S.OptimizerDecl(_name(self.src, c[0]), level, kind, c[3], self._span(meta))

    def remove_decl(self, meta, c):
        return S.RemoveDecl(_name(self.src, c[0]), self._span(meta))

    def empty(self, meta, c):
        return None

    def extends(self, meta, c):
        tok = c[0]
        if tok.type == "STRING":
            return S.Str(str(tok)[1:-1], self.src.span(tok.start_pos, tok.end_pos))
        return _name(self.src, tok)

    def model_decl(self, meta, c):
        items = tuple(i for i in c[2:] if i is not None)
        return S.ModelDecl(_name(self.src, c[0]), c[1], items, self._span(meta))

    def sweep_axis(self, meta, c):
        return S.SweepAxis(c[0], c[1], self._span(meta))

    def sweep_decl(self, meta, c):
        return S.SweepDecl(_name(self.src, c[0]), tuple(c[1:]), self._span(meta))

    def start(self, meta, c):
        pick = lambda cls: tuple(i for i in c if isinstance(i, cls))  # noqa: E731
        return S.File(self.src.name, pick(S.ConstDecl), pick(S.ModelDecl), pick(S.OptimizerDecl),
                      pick(S.SweepDecl))
