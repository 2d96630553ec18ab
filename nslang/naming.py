"""How spec names become Python names in generated code (shared by the checks and the planner,
so every clash is caught before code is written)."""
from __future__ import annotations

# classes every generated model.py defines or imports
GENERATED_CLASSES = {"Block", "Model", "Config", "NestedModel"}


def class_name(name: str) -> str:
    """`k_gen` -> `KGen`: the class generated for a memory or CMS."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Memory"


def norm_attribute(name: str) -> str:
    """The Block attribute holding the pre-norm of a sublayer."""
    return f"{name}_norm"
