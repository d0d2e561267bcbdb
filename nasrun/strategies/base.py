"""Strategy interfaces.

Multi-trial strategies are ask/tell: the runner asks for as many architectures as it has free workers
and tells results back in whatever order they finish. One-shot strategies propose one architecture:
their first `ask` trains a supernet (`search()`, on the run's SearchContext given by `attach`) and returns
the architecture it derives, which the runner scores like any trial; their trial limit is 1.
Every strategy owns a `random.Random` seeded from the run seed, and its whole state is plain JSON data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nasrun.errors import ConfigError
from nasrun.nets.size import NetworkLimits
from nasrun.records import Trial
from nasrun.rundir import RunDir, load_checkpoint, save_checkpoint
from nasrun.spaces import SearchSpace

if TYPE_CHECKING:
    from nasrun.training import StepReport


@dataclass(frozen=True)
class Proposal:
    """What `ask` may return instead of a plain architecture: train it to `fidelity` epochs, continuing
    the training state of trial `continues` (multi-fidelity strategies, nasrun/strategies/fidelity.py)."""

    arch: Any
    fidelity: int | None = None
    continues: int | None = None


@dataclass(frozen=True)
class Warmup:
    """`strategy.warmup`: score `candidates` random architectures with a zero-cost `proxy` (a name or a list,
    voted by rank) and propose the best `keep` (null: `candidates // 4`, at least 1) first; `batch_size` and
    `batches` are the training batches a data proxy sees. No proxy: no warm start."""

    proxy: str | list | None = None
    candidates: int = 100
    keep: int | None = None
    batch_size: int = 64
    batches: int = 1

    def __post_init__(self):
        for key in ("candidates", "batch_size", "batches") + (("keep",) if self.keep is not None else ()):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"strategy.warmup.{key} must be a positive integer, got {value!r}")
        if self.keep is not None and self.keep > self.candidates:
            raise ConfigError(f"strategy.warmup.keep ({self.keep}) cannot exceed candidates ({self.candidates})")

    @property
    def kept(self) -> int:
        return self.keep if self.keep is not None else max(1, self.candidates // 4)


@dataclass(frozen=True)
class RandomStart:
    """How many of a strategy's first proposals are random samples whatever the results: a search of at
    most `trials` trials is random search. `setting` says what decides it, `fix` how to shorten it."""

    trials: float             # math.inf: every proposal is a random sample
    setting: str | None = None
    fix: str | None = None    # default: "lower <setting>" when the setting is one config key

    @property
    def always(self) -> bool:
        return math.isinf(self.trials)

    @property
    def advice(self) -> str | None:
        if self.fix or not self.setting or " " in self.setting:
            return self.fix
        return f"lower {self.setting}"


@dataclass(frozen=True)
class ProxySettings:
    """What a strategy that reads zero-cost proxies during its search asks the runner for: the runner hands
    it a scorer (`use_proxies`) built as `estimator=zero_cost` with these settings would score (`table`:
    auto | true | false, looked up in the NB201 zero-cost table or computed on the run's data)."""

    proxies: tuple[str, ...]
    batch_size: int = 64
    batches: int = 1
    table: bool | str = "auto"


class Strategy:
    one_shot = False
    multi_fidelity = False  # True: ask returns Proposals with a fidelity (fit_fidelity is called before bind)
    warm_startable = True   # False where the first proposals are not fresh samples (REINFORCE, one-shot)
    warmup = Warmup()        # the `strategy.warmup` settings (configure)
    preferred: tuple = ()    # warm-start architectures, best first (`warm_start`, before `bind`)
    proxy_settings: ProxySettings | None = None  # set: the runner calls `use_proxies` before `bind`

    def configure(self, key: str, value: Any) -> None:
        """Settings every strategy config may hold (nasrun.build.SHARED_SETTINGS): `warmup`."""
        if key != "warmup":
            raise ConfigError(f"strategy: unknown shared setting {key!r}")
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"strategy.warmup must be a mapping (proxy, candidates, keep, ...), got {value!r}")
        unknown = set(value or {}) - set(Warmup.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"strategy.warmup: unknown keys {sorted(unknown)} "
                              f"(known: {sorted(Warmup.__dataclass_fields__)})")
        self.warmup = Warmup(**(value or {}))
        if self.warmup.proxy is not None and not self.warm_startable:
            self.warm_start([])  # the one-line refusal

    def warm_start(self, archs: list[Any]) -> None:
        """Propose `archs` (best first) before any fresh sample: the initial population, start points or
        startup trials. Called before `bind`; the strategy's Novelty (or its own bookkeeping) takes them."""
        if not self.warm_startable:
            raise ConfigError(f"strategy {type(self).__name__} cannot be warm-started: its first proposals "
                              "are not random samples; drop strategy.warmup")
        self.preferred = tuple(archs)

    def use_proxies(self, scorer) -> None:
        """The zero-cost scorer of `proxy_settings` (nasrun.estimators.zero_cost.ZeroCost, bound to the run):
        `proxy_scores(arch)`, `table_pool()`, `last_source`, `counts`. Called before `bind`."""
        self.proxy_scorer = scorer

    def report(self) -> dict:
        """What the run's summary.json records about the search besides its trials (e.g. zero-cost lookups)."""
        return {}

    def trial_notes(self, arch: Any) -> dict:
        """Metrics the strategy adds to the trial of `arch` it proposed (e.g. what the proxies predicted)."""
        return {}

    def trial_limit(self, budget: int) -> int:
        """How many trials a run with a budget of `budget` asks this strategy for."""
        return budget

    def attach(self, context: SearchContext) -> None:
        """The run's data, hardware, run directory and progress reports, for a strategy that trains
        (one-shot); before `bind`. Others need only the space and ignore it."""

    def bind(self, space: SearchSpace, seed: int, budget: int) -> None:
        """Attach to the run's space; `budget` is the number of trials the run will ask for."""
        self.space, self.seed, self.budget = space, int(seed), int(budget)
        self.rng = random.Random(self.seed)

    def random_start(self, space: SearchSpace) -> RandomStart:
        """How many trials it takes before this strategy proposes anything but random samples (before
        `bind`; multi-fidelity strategies after `fit_fidelity`). A strategy that learns from its first
        result keeps this default."""
        return RandomStart(0)

    def ask(self, n: int) -> list[Any]:
        """Up to `n` architectures (or Proposals) to evaluate next (fewer while waiting for results)."""
        raise NotImplementedError

    def tell(self, trials: list[Trial]) -> None:
        """Results of earlier asks, in completion order. Failed trials have status "failed"."""

    def state_dict(self) -> dict:
        """JSON-able state for resuming the search exactly where it was."""
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(rng_from_state(state["rng"]))


@dataclass
class SearchContext:
    """What a one-shot strategy needs to train its supernet.

    Long searches call `save_state(state)` at the end of every epoch (model, optimiser, scheduler, α,
    RNG states, epoch) and `load_state()` when they start: a resumed run continues from there.
    Per-epoch records go to `<run_dir>/alphas.jsonl`, one JSON line per epoch:
    {"epoch": int, "ops": [op names], "alphas": {"<cell>": [[softmax weight per op] per edge]}, ...}.
    `report(epoch, epochs, metrics)` hears every epoch, `steps(done, per_epoch, epochs)` every training step.
    """

    space: SearchSpace
    data: Any
    hardware: Any
    run_dir: Path | None
    seed: int
    report: Callable[[int, int, dict], None] | None = None
    steps: StepReport = None
    limits: NetworkLimits | None = None   # the size limits of the supernet (None: the defaults)

    @property
    def records_path(self) -> Path | None:
        """`alphas.jsonl`: one line per search epoch."""
        return RunDir(self.run_dir).alphas if self.run_dir else None

    @property
    def state_path(self) -> Path | None:
        return RunDir(self.run_dir).search_state if self.run_dir else None

    def save_state(self, state: dict) -> None:
        """Atomically write the search state (tensors, numbers, strings, lists, dicts only)."""
        if self.state_path is not None:
            save_checkpoint(state, self.state_path)

    def load_state(self) -> dict | None:
        """The last saved search state, or None when the search starts fresh."""
        if self.state_path is None or not self.state_path.exists():
            return None
        return load_checkpoint(self.state_path)


class OneShotStrategy(Strategy):
    """Trains a supernet and derives one architecture: the run's one proposal. `search(context)` does the
    work and returns (architecture, seconds); the first `ask` runs it on the attached context. The state
    (runner.json) keeps what was proposed, so a resumed run does not search again once it has proposed;
    a search interrupted before that resumes from its own saved state (checkpoints/search_state.pt)."""

    one_shot = True
    warm_startable = False
    context: SearchContext | None = None
    proposed: Any = None          # the derived architecture (JSON), once proposed
    search_seconds: float | None = None

    def search(self, context: SearchContext) -> tuple[Any, float]:
        """Train a supernet; (the derived architecture, seconds the search took over all its resumed parts)."""
        raise NotImplementedError

    def trial_limit(self, budget: int) -> int:
        return 1

    def attach(self, context: SearchContext) -> None:
        self.context = context

    def ask(self, n: int) -> list[Any]:
        if self.proposed is not None or n < 1:
            return []
        if self.context is None:
            raise TypeError(f"{type(self).__name__}.ask: attach the run's SearchContext first")
        arch, self.search_seconds = self.search(self.context)
        self.proposed = self.space.to_json(arch)
        return [arch]

    def trial_notes(self, arch: Any) -> dict:
        return {} if self.search_seconds is None else {"search_seconds": round(self.search_seconds, 3)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "proposed": self.proposed, "search_seconds": self.search_seconds}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        proposed, seconds = state.get("proposed"), state.get("search_seconds")
        if proposed is not None:
            self.space.from_json(proposed)  # an architecture of this space, or the error says why not
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not math.isfinite(seconds) or seconds < 0):
            raise ValueError(f"search_seconds must be a number >= 0, got {seconds!r}")
        self.proposed, self.search_seconds = proposed, seconds


# --- numeric settings: the rule as a message reads it, and its test -------------------------------------
POSITIVE = ("a number > 0", lambda v: v > 0)
AT_LEAST_0 = ("a number >= 0", lambda v: v >= 0)
FRACTION = ("a number in [0, 1)", lambda v: 0 <= v < 1)
WHOLE = ("a whole number >= 0", lambda v: v >= 0 and float(v).is_integer())


def check_number(key: str, value, rule: tuple) -> None:
    """ConfigError naming `strategy.<key>` unless `value` is a finite number the rule holds for."""
    text, holds = rule
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not holds(value):
        raise ConfigError(f"strategy.{key} must be {text}, got {value!r}")


def pair(value, key: str) -> list:
    """`value` as a list of two items, or ConfigError naming `strategy.<key>`."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"strategy.{key} must be a pair of numbers, got {value!r}")
    return list(value)


def rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
