"""The model `nslang` for lm-evaluation-harness: a trained run behind its three request types.

    python -m runtime.eval.lm_eval_adapter --model nslang --model_args run=runs/hope --tasks lambada_openai

runs lm-eval's own command line with the model registered (lm-eval finds models by name in its
registry, so the process must import this module first: `lm_eval --model nslang` works in any
process that did, and from Python):

    import lm_eval, runtime.eval.lm_eval_adapter        # registers "nslang"
    lm_eval.simple_evaluate(model="nslang", model_args="run=runs/hope,batch_size=8", tasks=[...])

model_args: `run` (a run directory or checkpoint file), `checkpoint`, `device` (auto), `batch_size`
(requests per forward call), `chunk` (tokens per call on long inputs), `max_gen_toks` (default
256). The requests go to runtime.eval.run_model:

    loglikelihood          (context, continuation) -> (sum of log-probs, whether greedy gives it),
                           batched, contexts shared by several continuations read once
    loglikelihood_rolling  (text,) -> log-likelihood of the whole text after the end-of-document
                           token; no windows: the fast state carries the whole document
    generate_until         (context, {"until", "max_gen_toks", ...}) -> greedy text with the
                           fast state, cut at the first stop string; sampling options are ignored

lm-eval is not a dependency of nslang: it is imported only here, when this module is imported
(and `NslangLM` is the registered class then); `NslangModel` holds the methods without it, so
they can be used (and tested) with any object that has lm-eval's `.args`.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

log = logging.getLogger(__name__)

NAME = "nslang"


def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith("auto"):
        return None  # lm-eval's "auto" batch size: keep ours
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"nslang model_args: {name}={value!r} is not a whole number") from None


class NslangModel:
    """The three lm-eval request types on top of a RunModel (no lm-eval import)."""

    def __init__(self, run: str | None = None, checkpoint: str | None = None, device: str | None = "auto",
                 batch_size: Any = 8, chunk: Any = None, max_gen_toks: Any = 256, model=None,
                 max_batch_size: Any = None, **unused):
        from .run_model import RunModel

        if unused:
            log.warning("nslang model: ignoring model_args %s", ", ".join(sorted(unused)))
        if model is not None:  # a RunModel already loaded (tests, notebooks)
            self.model = model
        else:
            if not run:
                raise ValueError("the nslang model needs model_args run=RUN_DIR (a trained run or a checkpoint)")
            device = str(device or "auto")
            if device.startswith("cuda"):
                import torch

                if not torch.cuda.is_available():  # lm-eval asks for cuda unless told otherwise
                    log.warning("nslang model: device %s is not available; using the CPU", device)
                    device = "cpu"
            self.model = RunModel.load(run, checkpoint, device,
                                       batch_size=_int(batch_size, "batch_size") or 8, chunk=_int(chunk, "chunk"))
        self.max_gen_toks = _int(max_gen_toks, "max_gen_toks") or 256

    # lm-eval reads these
    @property
    def tokenizer_name(self) -> str:
        return f"nslang-{getattr(self.model.tokenizer, 'kind', 'tokenizer')}"

    def _hook(self, kind: str, args, result) -> None:
        hook = getattr(self, "cache_hook", None)
        if hook is not None:
            hook.add_partial(kind, args, result)

    def loglikelihood(self, requests: Sequence, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [tuple(r.args[:2]) for r in requests]
        results = self.model.loglikelihoods(pairs)
        for pair, res in zip(pairs, results):
            self._hook("loglikelihood", pair, res)
        return results

    def loglikelihood_rolling(self, requests: Sequence, disable_tqdm: bool = False) -> list[float]:
        texts = [r.args[0] for r in requests]
        results = [ll for ll, _ in self.model.loglikelihoods([("", t) for t in texts])]
        for text, res in zip(texts, results):
            self._hook("loglikelihood_rolling", (text,), res)
        return results

    def generate_until(self, requests: Sequence, disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in requests:
            context, kwargs = r.args[0], dict(r.args[1] if len(r.args) > 1 and r.args[1] else {})
            until = kwargs.pop("until", None) or []
            if isinstance(until, str):
                until = [until]
            limit = _int(kwargs.pop("max_gen_toks", None), "max_gen_toks") or self.max_gen_toks
            if kwargs.get("do_sample") or float(kwargs.get("temperature", 0) or 0) > 0:
                log.warning("nslang model: generation is greedy; ignoring %s", kwargs)
            text = self.model.generate(context, max_tokens=limit, until=until)
            self._hook("generate_until", (context, r.args[1] if len(r.args) > 1 else {}), text)
            out.append(text)
        return out


def register():
    """Define `NslangLM` (lm-eval's LM + NslangModel) and register it as "nslang"; returns it."""
    import lm_eval.models  # noqa: F401  lm-eval's own models first (it skips that once its registry is not empty)
    from lm_eval.api.model import LM
    from lm_eval.api.registry import model_registry, register_model

    if NAME in model_registry:
        return model_registry.get(NAME)

    class NslangLM(NslangModel, LM):
        """lm-evaluation-harness model `nslang`: model_args run=RUN_DIR[,batch_size=N,chunk=N,...]."""

        def __init__(self, **kwargs):
            LM.__init__(self)
            NslangModel.__init__(self, **kwargs)

        # model_args win over lm-eval's own --batch_size / --device (which it always passes)
        @classmethod
        def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
            from lm_eval.utils import simple_parse_args_string

            return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

        @classmethod
        def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
            extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in arg_dict}
            return cls(**arg_dict, **extra)

    NslangLM.__module__ = __name__
    register_model(NAME)(NslangLM)
    return NslangLM


NslangLM = None
if __name__ != "__main__":  # under `python -m`, main() imports the module by its name instead
    try:
        NslangLM = register()
    except ImportError:  # lm-eval is not installed: NslangModel still works on its own
        pass


def register_or_none():
    try:
        return register()
    except ImportError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line with `nslang` registered."""
    import sys

    if NslangLM is None and register_or_none() is None:
        raise SystemExit("lm-evaluation-harness is not installed: pip install lm-eval")
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    from runtime.eval.lm_eval_adapter import main as _main

    _main()
