"""A trained run seen through the evaluation interfaces (common.py): `score_fn` and `generate_fn`.

    model = RunModel.load("runs/hope")        # the run's package + newest checkpoint (runtime.train.load_run)
    model.loglikelihoods([(context, continuation), ...])    # batched; [(log-likelihood, is_greedy)]
    model.score_fn(context, continuation) -> float          # one request (from the cache when prefetched)
    model.generate_fn(prompt, max_chars) -> str             # greedy, carrying the fast state
    metrics = run_task(model, make("mqar"), n=100)          # the task's requests scored in batches

Tokens. A request is read as a document of the training stream: the end-of-document token, then
the context, then the continuation, in the run's tokenizer (bytes, GPT-2 or the corpus's BPE).
The continuation's tokens are those of `encode(context + continuation)` after the context's own
tokens (lm-evaluation-harness's convention, so a BPE merge across the boundary is not lost);
where the context's tokens are not a prefix of the whole, the two parts are encoded separately.
The score is the sum of the natural-log probabilities of the continuation's tokens.

Long contexts. A sequence is fed in calls of `chunk` tokens with `state=` (1024, or the model's
context if longer), so attention carries its KV cache and recurrent memories their state from
call to call: a 16K-token haystack costs one chunk of activations at a time, never a 16K x 16K
attention matrix.

Shared contexts. A context that is longer than a chunk, or that several continuations share (the
choices of one example) and has at least MIN_SHARED_CONTEXT tokens, is read once up to its cut;
each continuation (the rest of the context, then the choice) starts from that state. Contexts of
about one length (the examples of one haystack length: within a quarter chunk) are read side by
side, `batch_size` per call, up to the batch's cut (the last segment boundary before its shortest
context's final token), and the batch state is split by rows; their continuations are read
`batch_size` per call too, each row from its own context's state. A launch-bound recurrent model
(Hope) pays per call and per segment, not per row, so this is what makes its evaluations short.
Other requests are read in one call each, batched across examples (`batch_size` rows,
right-padded: the models are causal, so padding after a row's last token changes nothing before
it).

Models with an in-context CMS level (a `segment` loop, runtime/model_base.py): `chunk` and every
cut are multiples of the segment, so every call of more than one token starts on a segment
boundary (the segment loop expects that). Their in-context levels learn from the next-token loss
inside each call, and the last token of a call has no target yet, so a sequence read in several
calls gets slightly different CMS updates than the same sequence in one call would, and the cut
of a batch depends on its shortest context: such a model's scores can move in the last digits
with `batch_size`. Every other memory carries its state exactly, and so do these models' scores.

Generation reads the prompt the same way, then greedily, one token per call with the state, until
`max_chars` characters, the end-of-document token, or a stop string. A task's prompts
(`run_task`) of about one length are read side by side up to their batch's cut, then generate in
lockstep (`_greedy_rows`): every call feeds each row one token, the rest of its prompt or its own
last token.
"""
from __future__ import annotations

import contextlib
import math
import random
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import torch

from .common import ScoreFn

T = TypeVar("T")
Request = tuple[str, str]
# Tokens per call on long inputs: big enough that the KV-cache copies of attention (one per call)
# stay cheap, small enough for one chunk of activations per request.
DEFAULT_CHUNK = 1024
# A context shared by several continuations is read once when it has at least this many tokens;
# a shorter one costs less read again with each continuation than a call of its own.
MIN_SHARED_CONTEXT = 64


class RunModel:
    """A model with its tokenizer, scoring and generating text (see the module docstring)."""

    def __init__(self, model, tokenizer, package=None, *, batch_size: int = 8, chunk: int | None = None,
                 precision: str = "auto", info: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.package = package
        self.info = dict(info or {})
        self.batch_size = max(1, int(batch_size))
        self.align = int(getattr(model, "segment", 0) or 0) or 1
        cfg = getattr(model, "cfg", None)
        chunk = int(chunk or max(DEFAULT_CHUNK, getattr(cfg, "context", None) or 0))
        self.chunk = max(self.align, chunk // self.align * self.align)
        self.device = next(model.parameters()).device
        use_bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if use_bf16 \
            else contextlib.nullcontext
        self._cache: dict[Request, tuple[float, bool]] = {}
        self.calls = 0  # forward calls, for tests and throughput notes
        # on_progress(what, done, total): told after each scored batch ("log-likelihood", requests)
        # and each generation ("generation", examples); the CLI prints it (long evaluations)
        self.on_progress: Callable[[str, int, int], None] | None = None

    def with_progress(self, on_progress) -> "RunModel":
        self.on_progress = on_progress
        return self

    def _report(self, what: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(what, done, total)

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, run: str | Path, checkpoint: str | Path | None = None, device: str = "auto",
             **kw) -> "RunModel":
        """A run directory (or one of its checkpoint files) through runtime.train's loader."""
        from runtime.train.generate import _resolve, load_run

        run_dir, path = _resolve(run, checkpoint)
        model, tokenizer, pkg = load_run(run, checkpoint, device)
        step = None
        name = path.stem
        if name.startswith("step_") and name[5:].isdigit():
            step = int(name[5:])
        info = {"run": str(run_dir), "checkpoint": str(path), "step": step,
                "model": getattr(pkg, "model_name", None), "spec_hash": getattr(pkg, "spec_hash", None),
                "tokenizer": getattr(tokenizer, "kind", None)}
        return cls(model, tokenizer, pkg, info=info, **kw)

    # -- tokens -------------------------------------------------------------------------------
    @property
    def eod(self) -> int:
        return int(self.tokenizer.eod_id)

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer.encode(text)] if text else []

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens, continuation tokens), the continuation's as `encode(whole)` has them."""
        ctx = self.encode(context)
        whole = self.encode(context + continuation)
        if whole[:len(ctx)] == ctx:
            return ctx, whole[len(ctx):]
        return ctx, self.encode(continuation)

    # -- scoring ------------------------------------------------------------------------------
    def score_fn(self, context: str, continuation: str) -> float:
        """Log-likelihood of `continuation` after `context` (natural log, summed over tokens)."""
        key = (context, continuation)
        if key not in self._cache:
            self._cache[key] = self.loglikelihoods([key])[0]
        return self._cache[key][0]

    def clear_cache(self) -> None:
        """Forget scored requests (call it after the weights change)."""
        self._cache.clear()

    def prefetch(self, requests: Iterable[Request]) -> None:
        """Score requests in batches now; later score_fn calls for them are cache hits."""
        todo = list(dict.fromkeys(r for r in requests if r not in self._cache))
        for req, result in zip(todo, self.loglikelihoods(todo)):
            self._cache[req] = result

    def batched(self, run: Callable[[ScoreFn], T]) -> T:
        """`run(score_fn)` twice: first with a recorder that collects the requests (and returns
        0.0), then, after scoring them all in batches, with the real score_fn (cache hits)."""
        seen: list[Request] = []

        def record(context: str, continuation: str) -> float:
            seen.append((context, continuation))
            return 0.0

        run(record)
        self.prefetch(seen)
        return run(self.score_fn)

    def batched_generation(self, run: Callable[[Callable[[str, int], str]], T]) -> T:
        """`run(generate_fn)` twice, as `batched` does for scores: first recording the prompts
        (returning ""), then with their texts from `generate_many`. A prompt the first run did not
        ask for (a task whose prompts depend on earlier answers) is generated when it comes."""
        seen: list[tuple[str, int]] = []

        def record(prompt: str, max_chars: int) -> str:
            seen.append((prompt, max_chars))
            return ""

        run(record)
        todo = list(dict.fromkeys(seen))
        texts = dict(zip(todo, self.generate_many(todo)))
        return run(lambda prompt, max_chars: texts[(prompt, max_chars)] if (prompt, max_chars) in texts
                   else self.generate_fn(prompt, max_chars))

    @torch.no_grad()
    def loglikelihoods(self, requests: Sequence[Request]) -> list[tuple[float, bool]]:
        """[(sum of log-probs of the continuation's tokens, whether greedy decoding gives them)]."""
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, (context, continuation) in enumerate(requests):
            ctx, cont = self.encode_pair(context, continuation)
            if not cont:
                out[i] = (0.0, True)
                continue
            groups.setdefault(tuple([self.eod] + ctx), []).append((i, cont))
        short: list[tuple[int, list[int], list[int]]] = []  # (index, sequence, continuation)
        shared: list[tuple[list[int], list[tuple[int, list[int]]]]] = []  # (context, items)
        for full, items in groups.items():
            longest = len(full) - 1 + max(len(c) for _, c in items)
            if longest > self.chunk or (len(items) > 1 and len(full) >= MIN_SHARED_CONTEXT):
                shared.append((list(full), items))
            else:
                short += [(i, list(full), cont) for i, cont in items]
        # A context that is long, or shared by several continuations (the choices of one example),
        # is read once up to its cut, side by side with contexts of about its length (one length
        # bin of a haystack task), `batch_size` per call; then every continuation of those contexts
        # (the rest of its context, then the choice) from its own context's state, `batch_size`
        # rows per call across contexts (all start at the cut: the same segment boundary).
        for cut, part in self._length_batches([len(full) for full, _ in shared]):
            states = self._prefill_rows([shared[k][0][:cut] for k in part])
            rows = [(shared[k][0][cut:], state, i, cont)
                    for k, state in zip(part, states) for i, cont in shared[k][1]]
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start:start + self.batch_size]
                st = _cat_states([state for _, state, _, _ in batch])
                for (_, _, i, _), res in zip(batch, self._score_rows([(t, c) for t, _, _, c in batch], st)):
                    out[i] = res
            self._report("log-likelihood", sum(r is not None for r in out), len(out))
        short.sort(key=lambda r: len(r[1]) + len(r[2]))
        for start in range(0, len(short), self.batch_size):
            part = short[start:start + self.batch_size]
            for (i, *_), res in zip(part, self._score_rows([(ctx, c) for _, ctx, c in part], None)):
                out[i] = res
            self._report("log-likelihood", sum(r is not None for r in out), len(out))
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, text: str) -> float:
        """Log-likelihood of a whole text after the end-of-document token (perplexity)."""
        return self.loglikelihoods([("", text)])[0][0] if text else 0.0

    def _forward(self, tokens: list[list[int]], state):
        x = torch.tensor(tokens, dtype=torch.long, device=self.device)
        if state is None:
            state = self.model.init_state(x.shape[0])
        self.calls += 1
        with self._autocast():
            logits, state = self.model(x, state=state)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return logits, state

    def _prefill(self, tokens: list[int]):
        """The fast state after reading `tokens` (one sequence), in calls of `chunk` tokens."""
        return self._prefill_rows([tokens])[0]

    def _prefill_rows(self, rows: list[list[int]]) -> list:
        """The fast state of each row (sequences of one length) after reading it, as batch-1
        states: the rows are read together, in calls of `chunk` tokens, and the batch state is
        split by rows (every state tensor is batch-first, as `_cat_states` expects)."""
        if not rows[0]:
            return [None] * len(rows)
        state = None
        for s in range(0, len(rows[0]), self.chunk):
            _, state = self._forward([r[s:s + self.chunk] for r in rows], state)
        try:
            return _split_state(state, len(rows))
        except ValueError:  # a state tensor without the batch dimension first: one row at a time
            return [self._prefill_rows([r])[0] for r in rows]

    def _length_batches(self, lengths: Sequence[int], spread: int | None = None) -> list[tuple[int, list[int]]]:
        """Indices of sequences of these lengths in batches to read side by side: shortest first, at
        most `batch_size` each, each spanning at most `spread` tokens of length (default a quarter
        chunk, or one segment if longer), with the batch's cut: its shortest sequence's last segment
        boundary before its final token. Everything before the cut is read once for the batch."""
        spread = max(self.align, self.chunk // 4) if spread is None else spread
        batches: list[list[int]] = []
        for k in sorted(range(len(lengths)), key=lambda k: lengths[k]):
            if batches and len(batches[-1]) < self.batch_size and lengths[k] - lengths[batches[-1][0]] <= spread:
                batches[-1].append(k)
            else:
                batches.append([k])
        return [((lengths[b[0]] - 1) // self.align * self.align, b) for b in batches]

    def _score_rows(self, rows: list[tuple[list[int], list[int]]], state) -> list[tuple[float, bool]]:
        """rows: (prefix, continuation), the prefix non-empty; `state` is the state before the
        prefix (None: fresh). The input is prefix + continuation[:-1]; the continuation's token j
        is the target of input position len(prefix) - 1 + j."""
        inputs = [p + c[:-1] for p, c in rows]
        width = max(len(x) for x in inputs)
        inputs = [x + [self.eod] * (width - len(x)) for x in inputs]
        # (row, position, target) of every scored token, as tensors
        rk = torch.tensor([k for k, (p, c) in enumerate(rows) for _ in c])
        pos = torch.tensor([len(p) - 1 + j for p, c in rows for j in range(len(c))])
        tgt = torch.tensor([t for _, c in rows for t in c])
        logp_all = torch.empty(len(tgt), dtype=torch.float64)
        hit_all = torch.empty(len(tgt), dtype=torch.bool)
        for s in range(0, width, self.chunk):
            logits, state = self._forward([x[s:s + self.chunk] for x in inputs], state)
            sel = (pos >= s) & (pos < s + logits.shape[1])
            if not bool(sel.any()):
                continue
            rows_, cols, toks = rk[sel].to(self.device), (pos[sel] - s).to(self.device), tgt[sel].to(self.device)
            picked = logits[rows_, cols]  # [n, vocab]
            logp = torch.log_softmax(picked, dim=-1).gather(1, toks[:, None])[:, 0]
            logp_all[sel] = logp.double().cpu()
            hit_all[sel] = (picked.argmax(dim=-1) == toks).cpu()
        sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, rk, logp_all)
        greedy = torch.ones(len(rows), dtype=torch.bool)
        for k in rk[~hit_all].tolist():
            greedy[k] = False
        return [(float(a), bool(b)) for a, b in zip(sums, greedy)]

    # -- generation ---------------------------------------------------------------------------
    def generate_fn(self, prompt: str, max_chars: int) -> str:
        """Greedy text after `prompt`, at most `max_chars` characters (common.py's interface)."""
        return self.generate(prompt, max_chars=max_chars)

    @torch.no_grad()
    def generate(self, prompt: str, max_chars: int | None = None, max_tokens: int | None = None,
                 until: Sequence[str] = ()) -> str:
        """Greedy continuation of `prompt` with the fast state: stops at `max_chars` characters,
        `max_tokens` tokens, the end-of-document token, or the first of the `until` strings
        (which is cut off, as lm-evaluation-harness expects)."""
        if max_chars is None and max_tokens is None:
            raise ValueError("give max_chars or max_tokens")
        limit = max_tokens if max_tokens is not None else max(1, 4 * max_chars)
        return self._text(self.greedy_tokens([self.eod] + self.encode(prompt), limit), max_chars, until)

    @torch.no_grad()
    def generate_many(self, requests: Sequence[tuple[str, int]]) -> list[str]:
        """`generate(prompt, max_chars=n)` for each (prompt, n): prompts of about one length are read
        side by side up to their batch's cut (as contexts are scored), then their tails and greedy
        tokens run in lockstep, one token per row and call (`_greedy_rows`)."""
        ids = [[self.eod] + self.encode(prompt) for prompt, _ in requests]
        limits = [max(1, 4 * n) for _, n in requests]
        texts: list[str] = [""] * len(requests)
        done = 0
        for cut, part in self._length_batches([len(x) for x in ids]):
            states = self._prefill_rows([ids[i][:cut] for i in part])
            tails = {i: ids[i][cut:] for i in part}
            # Rows whose tails differ by more than the characters they may write would spend more
            # calls waiting in lockstep than generating: such a row starts a group of its own.
            groups: list[list[int]] = []
            for k in sorted(range(len(part)), key=lambda k: len(tails[part[k]])):
                i = part[k]
                if groups and len(tails[i]) - len(tails[part[groups[-1][0]]]) <= requests[i][1]:
                    groups[-1].append(k)
                else:
                    groups.append([k])
            for group in groups:
                rows = [part[k] for k in group]
                tokens = self._greedy_rows(_cat_states([states[k] for k in group]), [tails[i] for i in rows],
                                           [limits[i] for i in rows], [requests[i][1] for i in rows])
                for i, toks in zip(rows, tokens):
                    texts[i] = self._text(toks, requests[i][1], ())
                done += len(rows)
                self._report("generation", done, len(requests))
        return texts

    def _greedy_rows(self, state, tails: list[list[int]], limits: list[int], max_chars: list[int]) -> list[list[int]]:
        """Greedy tokens of each row after its tail (rows of one batch state, all at one position):
        the shortest tail's length in one call, then one token per row and call, a row reading the
        rest of its tail while the others generate. Rows stop at the end-of-document token,
        `limits[r]` tokens or `max_chars[r]` characters; the call loop stops when all have.
        A model with in-context CMS levels learns only from tokens with a target in the same call,
        so a tail read token by token adds nothing to its levels' update (as generated tokens never
        do): its text can differ from `generate`'s when the tails' lengths differ."""
        n = len(tails)
        out: list[list[int]] = [[] for _ in range(n)]
        finished = [False] * n
        t = min(len(x) for x in tails)
        logits, state = self._forward([x[:t] for x in tails], state)
        while True:
            best = logits[:, -1].argmax(dim=-1).tolist()
            for r in range(n):
                if t >= len(tails[r]) and not finished[r]:
                    out[r].append(best[r])
                    finished[r] = (best[r] == self.eod or len(out[r]) >= limits[r]
                                   or len(self.tokenizer.decode(out[r])) >= max_chars[r])
            if all(finished):
                return out
            feed = [[tails[r][t] if t < len(tails[r]) else out[r][-1]] for r in range(n)]
            logits, state = self._forward(feed, state)
            t += 1

    def _text(self, tokens: Iterable[int], max_chars: int | None, until: Sequence[str]) -> str:
        """The text of greedy `tokens` up to the end-of-document token, `max_chars` characters or
        the first `until` string (cut off)."""
        new: list[int] = []
        text = ""
        for token in tokens:
            if token == self.eod:
                break
            new.append(token)
            text = self.tokenizer.decode(new)
            if max_chars is not None and len(text) >= max_chars:
                break
            if until and any(u and u in text for u in until):
                break
        for u in until:
            if u and u in text:
                text = text[:text.index(u)]
        return text if max_chars is None else text[:max_chars]

    @torch.no_grad()
    def greedy_tokens(self, ids: list[int], limit: int) -> Iterable[int]:
        """Greedy token ids after `ids` (up to `limit`), each computed from the carried state: the
        prompt in calls of `chunk` tokens, then one token per call."""
        cut = (len(ids) - 1) // self.align * self.align  # where generate_many cuts a batch of one
        return self._greedy_from(self._prefill(ids[:cut]), ids[cut:], limit)

    def _greedy_from(self, state, tail: list[int], limit: int) -> Iterable[int]:
        """Greedy token ids after reading `tail` (non-empty, under one chunk) from `state`."""
        for _ in range(limit):
            with torch.no_grad():
                logits, state = self._forward([tail], state)
            token = int(logits[0, -1].argmax())
            yield token
            tail = [token]


def _split_state(state, n: int) -> list:
    """A fast state of n sequences as n batch-1 states (views): the inverse of `_cat_states`.
    Every tensor with a dimension is batch-first; scalars (a position) are shared."""
    if n == 1:
        return [state]
    if isinstance(state, torch.Tensor):
        if not state.dim():
            return [state] * n
        if state.shape[0] != n:
            raise ValueError(f"a state tensor of shape {tuple(state.shape)} is not batch-first for {n} rows")
        return list(state.split(1))
    if isinstance(state, dict):
        parts = {k: _split_state(v, n) for k, v in state.items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(n)]
    if isinstance(state, (list, tuple)):
        parts = [_split_state(v, n) for v in state]
        named = isinstance(state, tuple) and hasattr(state, "_fields")
        make = (lambda xs: type(state)(*xs)) if named else type(state)
        return [make([v[i] for v in parts]) for i in range(n)]
    return [state] * n


def _cat_states(states: list):
    """Batch-1 fast states as one state of len(states) sequences, in order: the inverse of
    `_split_state`. A tensor without a batch dimension of 1 (a scalar position) is shared."""
    first = states[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(states) if first.dim() and first.shape[0] == 1 else first
    if isinstance(first, dict):
        return {k: _cat_states([s[k] for s in states]) for k in first}
    if isinstance(first, (list, tuple)):
        items = [_cat_states([s[j] for s in states]) for j in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    return first


# -- tasks, streams --------------------------------------------------------------------------------

MODES = ("auto", "ll", "gen", "both")
# Families whose answers are short strings that a generator writes (the rest rank choices).
GENERATIVE = ("mqar", "niah_", "babi_qa", "formal_", "lambada")


def task_mode(name: str, mode: str = "auto") -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    return "both" if name.startswith(GENERATIVE) else "ll"


def run_task(model: RunModel, task, n: int, seed: int = 0, mode: str = "auto") -> dict:
    """Draw n examples of `task` and score them: log-likelihoods in batches, then generation."""
    mode = task_mode(task.name, mode)
    examples = task.examples(n, seed)
    out: dict = {}
    if mode in ("ll", "both"):
        out = model.batched(lambda fn: task.score(examples, score_fn=fn))
    if mode in ("gen", "both"):
        out = _merge(out, model.batched_generation(lambda fn: task.score(examples, generate_fn=fn)))
    out["mode"] = mode
    return out


def _merge(a: dict, b: dict) -> dict:
    """Metrics of a log-likelihood pass and a generation pass of the same examples, in one dict."""
    if not a:
        return dict(b)
    out = dict(a)
    for key, value in b.items():
        if key == "bins":
            bins = out.setdefault("bins", {})
            for bkey, groups in value.items():
                mine = bins.setdefault(bkey, {})
                for label, metrics in groups.items():
                    mine[label] = {**mine.get(label, {}), **metrics}
        elif key not in out:
            out[key] = value
    return out


def finetune(model: RunModel, texts: Sequence[str], steps: int, lr: float | None = None, batch_size: int = 4,
             seq_len: int | None = None, seed: int = 0) -> list[float]:
    """Train the weights on `texts` (each read as a document: EOD + text) for `steps` steps of the
    spec's outer optimizer (runtime.train.loop.make_optimizer), on random windows of the
    concatenated token stream. Returns the losses; clears the score cache."""
    from runtime.train.loop import make_optimizer

    if steps <= 0 or not texts:
        return []
    stream: list[int] = []
    for text in texts:
        stream += [model.eod] + model.encode(text)
    cfg = getattr(model.model, "cfg", None)
    seq_len = int(seq_len or getattr(cfg, "context", None) or 256)
    seq_len = max(2, min(seq_len, len(stream) - 1)) if len(stream) > 2 else len(stream)
    if len(stream) < 2:
        return []
    spec_opt = model.package.optimizer if model.package is not None else {"name": "adamw", "kind": "adamw"}
    optimizer, _ = make_optimizer(spec_opt, model.model, lr)
    rng = random.Random(seed)
    data = torch.tensor(stream, dtype=torch.long)
    losses = []
    model.model.train()
    try:
        for _ in range(steps):
            starts = [rng.randrange(0, len(stream) - seq_len + 1) for _ in range(batch_size)]
            batch = torch.stack([data[s:s + seq_len] for s in starts]).to(model.device)
            with model._autocast():
                loss = model.model.loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.model.parameters() if p.grad is not None], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"the fine-tuning loss became {value}; lower lr")
            losses.append(value)
    finally:
        model.model.eval()
        model.clear_cache()
    return losses


def run_continual(model: RunModel, stream, steps: int = 20, lr: float | None = None, batch_size: int = 4,
                  seq_len: int | None = None, seed: int = 0):
    """Run a continual stream (continual.py): train on each task's examples (`finetune`), then
    test every task seen so far, with its requests scored in batches. Returns the
    ContinualResult (accuracy matrix, forgetting, backward transfer)."""
    from .common import evaluate

    def train_fn(i: int, task) -> None:
        finetune(model, [ex.text + ex.answer for ex in task.train], steps, lr, batch_size, seq_len, seed + i)
        # score every test request of the tasks seen so far in batches, before stream.run asks
        for j in range(i + 1):
            model.batched(lambda fn: evaluate(stream.test_examples(j, i), score_fn=fn))

    return stream.run(train_fn, score_fn=model.score_fn)
