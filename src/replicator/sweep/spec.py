"""What a sweep searches: a grid (Hydra's override syntax), random draws, or an Optuna study.

A grid is written as Hydra writes a multirun, and parsed by Hydra's own override parser::

    optim.lr=0.1,0.01   model=small,big   layers=range(1,5)   p=range(0,1,step=0.25)
    act=choice(relu,gelu)   batch=64 (a plain override: the same in every job)

Random search draws each ``--sample`` from a recorded root seed, so the same root draws the same
values again::

    optim.lr=loguniform(1e-4,1e-1)  wd=uniform(0,0.1)  bs=choice(32,64)  depth=intuniform(2,8)

:func:`parse_sweep` checks everything the user wrote (naming the override at fault) and
:meth:`SweepSpec.points` expands a grid or a random search into the list of jobs' overrides and
seeds; an Optuna study asks its points one trial at a time (:mod:`replicator.sweep.search`).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._util.deps import require
from ..config.safe_yaml import clip
from ..errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_MAX_JOBS",
    "Axis",
    "Distribution",
    "OptunaSearch",
    "Point",
    "SweepSpec",
    "looks_like_sweep",
    "parse_sweep",
    "refuse_sweep_override",
    "render_value",
]

DEFAULT_MAX_JOBS = 1000
"""``sweep_max_jobs`` when replicator.yaml does not set it: larger sweeps need ``--yes``."""

_GRID_HELP = (
    "Write KEY=V1,V2, KEY=range(START,STOP) or range(START,STOP,step=S), or KEY=choice(V1,V2)."
)
_SAMPLE_HELP = (
    "Write KEY=uniform(LOW,HIGH), loguniform(LOW,HIGH), intuniform(LOW,HIGH) or choice(V1,V2,...)."
)


def render_value(value: Any) -> str:
    """``value`` as the text of a ``--set KEY=TEXT`` override that reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 reads 1e-05 as text: write 1.0e-05
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, str):
        import yaml

        try:
            reads_back = yaml.safe_load(value) == value
        except yaml.YAMLError:
            reads_back = False
        return value if reads_back and value.strip() == value and value else json.dumps(value)
    return json.dumps(value)


@dataclass(frozen=True)
class Axis:
    """One swept key of a grid and its values, in order."""

    key: str  # as written, with Hydra's + / ++ prefix
    values: tuple[Any, ...]
    text: str  # the override as the user wrote it

    def override(self, value: Any) -> str:
        return f"{self.key}={render_value(value)}"


@dataclass(frozen=True)
class Distribution:
    """One ``--sample``: where a random search or Optuna draws a key's value from."""

    key: str
    kind: Literal["uniform", "loguniform", "intuniform", "choice"]
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    text: str = ""

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        if self.kind == "intuniform":
            return rng.randint(int(self.low), int(self.high))
        return self.choices[rng.randrange(len(self.choices))]

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial suggests for this key."""
        name = self.key.lstrip("+")
        if self.kind == "uniform":
            return trial.suggest_float(name, self.low, self.high)
        if self.kind == "loguniform":
            return trial.suggest_float(name, self.low, self.high, log=True)
        if self.kind == "intuniform":
            return trial.suggest_int(name, int(self.low), int(self.high))
        return trial.suggest_categorical(name, list(self.choices))

    def override(self, value: Any) -> str:
        return f"{self.key}={render_value(value)}"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text}


@dataclass(frozen=True)
class OptunaSearch:
    """``--optuna``: a study that minimises or maximises ``metric`` over the samples."""

    metric: str
    direction: Literal["minimize", "maximize"] = "minimize"
    prune: bool = True


@dataclass(frozen=True)
class Point:
    """One job of a sweep: its position, its ``--set`` overrides and its seed."""

    index: int
    overrides: tuple[str, ...]
    seed: int
    trial: int | None = None  # the Optuna trial number

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "overrides": list(self.overrides),
            "seed": self.seed,
        }
        if self.trial is not None:
            out["trial"] = self.trial
        return out


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep: fixed overrides, grid axes, samples, trials, seeds per point."""

    fixed: tuple[str, ...] = ()
    axes: tuple[Axis, ...] = ()
    samples: tuple[Distribution, ...] = ()
    trials: int | None = None
    seeds: int = 1
    optuna: OptunaSearch | None = None
    texts: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many jobs the sweep runs (computed without expanding it)."""
        if self.optuna is not None:
            return self.trials or 0
        grid = math.prod(len(axis.values) for axis in self.axes)
        return grid * (self.trials or 1) * self.seeds

    def points(self, *, root: int, seeds: Sequence[int]) -> list[Point]:
        """Every job of a grid or random search: the grid's product, times ``trials`` draws
        from ``root``, times ``seeds``; the same root gives the same list."""
        rng = random.Random(root)
        out: list[Point] = []
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            grid = tuple(axis.override(v) for axis, v in zip(self.axes, combo, strict=True))
            for _ in range(self.trials or 1):
                drawn = tuple(d.override(d.draw(rng)) for d in self.samples)
                for seed in seeds:
                    out.append(Point(len(out), (*self.fixed, *grid, *drawn), seed))
        return out

    def search_space(self) -> tuple[Distribution, ...]:
        """What an Optuna trial suggests: the samples, and each grid axis as a choice."""
        as_choices = tuple(
            Distribution(a.key, "choice", choices=a.values, text=a.text) for a in self.axes
        )
        return (*as_choices, *self.samples)


def parse_sweep(
    sets: Sequence[str],
    samples: Sequence[str] = (),
    *,
    trials: int | None = None,
    seeds: int | None = None,
    optuna: OptunaSearch | None = None,
) -> SweepSpec:
    """The sweep the options describe; a bad override, range or count raises naming it."""
    fixed: list[str] = []
    axes: list[Axis] = []
    for text in sets:
        axis = _parse_grid_override(text)
        if axis is None:
            fixed.append(text)
        else:
            axes.append(axis)
    dists = tuple(_parse_sample(text) for text in samples)
    keys = [a.key.lstrip("+") for a in axes] + [d.key.lstrip("+") for d in dists]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UsageError(f"The sweep gives '{twice[0]}' more than once; give each key once.")
    if trials is not None and trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}.")
    if seeds is not None and seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}.")
    if optuna is not None:
        if not axes and not dists:
            raise UsageError(
                "--optuna needs a search space: give --sample KEY=DIST (or a grid KEY=V1,V2)."
            )
        if trials is None:
            raise UsageError("--optuna needs --trials N (how many trials the study runs).")
        if seeds not in (None, 1):
            raise UsageError(
                "--optuna runs one job per trial, all with one seed drawn from the root; "
                "drop --seeds."
            )
    elif dists and trials is None:
        raise UsageError("--sample needs --trials N (how many random draws to run).")
    elif trials is not None and not dists:
        raise UsageError("--trials needs --sample KEY=DIST (or --optuna) to draw from.")
    texts: dict[str, Any] = {
        "set": list(sets),
        "sample": list(samples),
        "trials": trials,
        "seeds": seeds,
    }
    if optuna is not None:
        texts["optuna"] = {
            "metric": optuna.metric,
            "direction": optuna.direction,
            "prune": optuna.prune,
        }
    return SweepSpec(tuple(fixed), tuple(axes), dists, trials, seeds or 1, optuna, texts)


# ------------------------------------------------------------------------------------ grid
_SWEEP_CALL = re.compile(r"^\s*(range|choice|interval|glob|sort|shuffle|tag)\s*\(")


def looks_like_sweep(text: str) -> bool:
    """Whether the override ``text`` lists several values (``a=1,2``, ``a=range(1,5)``): a
    comma outside brackets and quotes, or one of Hydra's sweep functions."""
    if "=" not in text:
        return False
    value = text.split("=", 1)[1].strip()
    if _SWEEP_CALL.match(value):
        return True
    depth, quote = 0, ""
    for char in value:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def refuse_sweep_override(text: str) -> None:
    """Raise for an override of ``replicator run`` that lists several values (``a=1,2``)."""
    if not looks_like_sweep(text):
        return
    key = text.split("=", 1)[0].strip()
    value = text.split("=", 1)[1].strip()
    raise ConfigError(
        f"Override '{clip(text)}' lists several values, and `replicator run` runs one config. "
        f"To run one job per value, use: replicator sweep --set {clip(text)} -- COMMAND. "
        f"For a list write {key}=[{value}]; for text, quote it: {key}='{value}'."
    )


def _parse_grid_override(text: str) -> Axis | None:
    """The axis ``text`` sweeps, or None for a plain override (given to every job)."""
    if not looks_like_sweep(text):
        return None
    require("hydra", purpose="A sweep grid (Hydra's override syntax)")
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep
    from hydra.errors import HydraException

    shown = clip(text)
    try:
        override = OverridesParser.create().parse_override(text)
    except HydraException as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"Sweep override '{shown}' cannot be parsed: {reason}. {_GRID_HELP}"
        ) from None
    if not override.is_sweep_override():
        return None
    key = (override.input_line or text).split("=", 1)[0].strip()
    value = override.value()
    if isinstance(value, RangeSweep):
        values = _range_values(value, shown)
    elif isinstance(value, ChoiceSweep):
        values = tuple(override.sweep_iterator())
    else:  # interval(): a continuous range has no grid
        raise ConfigError(
            f"Sweep override '{shown}' is not a list of values: give it as --sample "
            f"{key}=uniform(LOW,HIGH) for a random or Optuna search. {_GRID_HELP}"
        )
    if not values:
        raise ConfigError(f"Sweep override '{shown}' gives no values, so the sweep is empty.")
    return Axis(key, values, text)


def _range_values(sweep: Any, shown: str) -> tuple[Any, ...]:
    """The values of a ``range()``, counted before they are listed (a huge one is refused)."""
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step == 0:
        raise ConfigError(f"Sweep override '{shown}': range() step must not be 0. {_GRID_HELP}")
    count = max(0, math.ceil((stop - start) / step))
    if count > 1_000_000:
        raise ConfigError(f"Sweep override '{shown}' gives {count} values; that is too many.")
    values = [start + i * step for i in range(count)]
    if any(isinstance(v, float) for v in (start, stop, step)):
        # 0.1 * 3 is 0.30000000000000004: round to the digits the step was written with
        digits = max(_decimals(start), _decimals(step))
        values = [round(float(v), digits) for v in values]
    return tuple(values)


def _decimals(value: float) -> int:
    text = repr(float(value))
    if "e" in text:
        return 12
    return len(text.split(".")[1]) if "." in text else 0


# --------------------------------------------------------------------------------- samples
_CALL = re.compile(r"^\s*([+]{0,2}[A-Za-z_][\w.\-]*)\s*=\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


def _parse_sample(text: str) -> Distribution:
    shown = clip(text)
    m = _CALL.match(text)
    if m is None:
        raise ConfigError(f"Sample '{shown}' cannot be parsed. {_SAMPLE_HELP}")
    key, kind, inner = m.group(1), m.group(2), m.group(3)
    args = [_scalar(part, shown) for part in inner.split(",")] if inner.strip() else []
    if kind == "interval":
        kind = "uniform"
    if kind == "choice":
        if not args:
            raise ConfigError(f"Sample '{shown}': choice() needs at least one value.")
        return Distribution(key, "choice", choices=tuple(args), text=text)
    if kind not in ("uniform", "loguniform", "intuniform"):
        raise ConfigError(f"Sample '{shown}': unknown distribution '{kind}'. {_SAMPLE_HELP}")
    if len(args) != 2 or not all(_is_number(a) for a in args):
        raise ConfigError(f"Sample '{shown}': {kind}() takes two numbers, LOW and HIGH.")
    low, high = float(args[0]), float(args[1])
    if not low < high:
        raise ConfigError(f"Sample '{shown}': LOW must be below HIGH, got {args[0]}, {args[1]}.")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"Sample '{shown}': loguniform() needs LOW above 0, got {args[0]}.")
    if kind == "intuniform" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"Sample '{shown}': intuniform() takes two whole numbers.")
    return Distribution(key, kind, low=low, high=high, text=text)  # type: ignore[arg-type]


def _scalar(part: str, shown: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(part.strip())
    except yaml.YAMLError:
        raise ConfigError(f"Sample '{shown}': '{part.strip()}' is not a value.") from None
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        value = float(value)  # YAML 1.1 reads 1e-4 as a string
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def iter_keys(spec: SweepSpec) -> Iterator[str]:
    """The keys the sweep sets, without Hydra's prefixes (for checking them against a config)."""
    for text in spec.fixed:
        yield text.lstrip("~+").split("=", 1)[0].strip()
    for axis in spec.axes:
        yield axis.key.lstrip("+")
    for dist in spec.samples:
        yield dist.key.lstrip("+")
