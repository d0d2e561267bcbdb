"""Training-free scoring: zero-cost proxies of each architecture's freshly initialised network
(nasrun.estimators.proxies), then one real training of the architecture the search chose.

A trial records every chosen proxy's raw value (`zc_<proxy>`) and `zc_score`, the estimator's score and the
run's default objective (so the run ranks by `fitness` = the proxy); `val_accuracy` is never made up.
With one proxy `zc_score` is its value. With several they are combined by rank (a vote): `zc_score` is the
mean, over the proxies, of the fraction of a fixed reference sample (`reference` architectures drawn once
from the run seed) that the architecture beats, ties counting half, so a trial's score never depends on
which other trials ran, and a resumed run scores exactly as before. A proxy undefined for an architecture
(e.g. jacob_cov of a network whose output ignores its input) fails the trial when it is the only one, and
counts as beating nothing in a vote (its `zc_<proxy>` is then null).

Every network is initialised from `init_seed` (the run seed when null) and the data proxies see the same
`batches` training batches, drawn once from the run seed: the score is a function of the architecture.
`final` (an estimator config, full_training by default) trains and tests the best architecture; the test
metrics report its result next to the proxy score.

`table` (auto | true | false): on the NB201 space at C=16, N=5 the proxies can be looked up in the
packaged zero-cost table (nasrun.estimators.nb201_zc) instead of computed. `auto` looks up where the table
holds what this run would compute: when the run loads no data (the tabular setting, where the table's
CIFAR-10 scores stand for the benchmark's; all of them, or none while the table is incomplete), or when
one architecture's fresh scores equal its row (same data batch, init seed and input); else it computes.
`true` always looks up (a ConfigError where the table cannot answer), `false` always computes. Each
trial's `zc_source` says which (`table (CIFAR-10 images)` or `computed`).
"""

from __future__ import annotations

import bisect
import math
import random
from typing import TYPE_CHECKING, Any, Sequence

from nasrun.errors import ConfigError
from nasrun.estimators.base import Estimator, Evaluation, Report
from nasrun.estimators import proxies
from nasrun.estimators.nb201_zc import COMPUTED, SOURCE, ZeroCostTable, agrees, covers, load_zc_table, table_fits
from nasrun.hardware import seed_everything

if TYPE_CHECKING:
    import numpy as np


class ZeroCost(Estimator):
    score_metric = "zc_score"

    def __init__(self, proxy: str | Sequence[str] = "synflow", batch_size: int = 64, batches: int = 1,
                 init_seed: int | None = None, reference: int = 32, final: Estimator | None = None,
                 table: bool | str = "auto"):
        self.proxies = [proxy] if isinstance(proxy, str) else list(proxy or [])
        unknown = [name for name in self.proxies if name not in proxies.PROXIES]
        if not self.proxies or unknown or len(set(self.proxies)) < len(self.proxies):
            raise ConfigError(f"estimator.proxy: {proxy!r} is not one proxy or a list of distinct proxies "
                              f"from {sorted(proxies.PROXIES)}")
        for key, value, least in (("batch_size", batch_size, 1), ("batches", batches, 1), ("reference", reference, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"estimator.{key} must be an integer >= {least}, got {value!r}")
        if init_seed is not None and (isinstance(init_seed, bool) or not isinstance(init_seed, int) or init_seed < 0):
            raise ConfigError(f"estimator.init_seed must be a non-negative integer or null, got {init_seed!r}")
        if final is not None and not isinstance(final, Estimator):
            raise ConfigError(f"estimator.final must be an estimator config (e.g. full_training), got {final!r}")
        if table not in (True, False, "auto"):
            raise ConfigError(f"estimator.table must be auto, true or false, got {table!r}")
        self.batch_size, self.batches, self.init_seed, self.reference = batch_size, batches, init_seed, reference
        self.final, self.table = final, table
        self.reports = ("zc_score", *(f"zc_{name}" for name in self.proxies))
        # Data-free proxies (or only lookups) and a final estimator that loads none (the NB201 table): no
        # dataset is loaded, the networks are built for the table's input.
        data_free = table is True or not any(proxies.PROXIES[name].needs_data for name in self.proxies)
        self.needs_data = not (data_free and final is not None and not final.needs_data)
        self.shape: dict | None = None  # {"input_shape", "num_classes"} for scoring without data (warm starts)
        self.lookup: ZeroCostTable | None = None
        self.counts = {"looked_up": 0, "computed": 0}
        self.last_source = COMPUTED   # where the last proxy_scores came from

    def bind(self, space, data, hardware, run_dir=None, seed: int = 0) -> None:
        super().bind(space, data, hardware, run_dir, seed)
        self._check_final_shape()
        self.inputs = self._inputs()
        self.lookup = self._lookup_table()
        if self.final is not None:
            self.final.bind(space, data, hardware, run_dir, seed)
        self.references: dict[str, list[float]] | None = None  # drawn at the first vote

    def _reference_scores(self) -> dict[str, list[float]]:
        """Every proxy's sorted scores on `reference` architectures drawn from the run seed."""
        rng = random.Random(self.seed * 7_919 + 1)
        return self.rank_against([self.proxy_scores(self.space.sample(rng)) for _ in range(self.reference)])

    def rank_against(self, raw: Sequence[dict[str, float]]) -> dict[str, list[float]]:
        """Make `raw` (proxy scores of some architectures) the sample a vote ranks against."""
        self.references = {name: sorted(s[name] for s in raw if math.isfinite(s[name])) for name in self.proxies}
        return self.references

    def network_spec(self) -> dict | None:
        return self.shape or (self.final.network_spec() if self.final is not None else None)

    def _check_final_shape(self) -> None:
        """A final estimator that loads no data (the NB201 table) answers for one input: the proxies must
        score networks built for that input."""
        spec = self.final.network_spec() if self.final is not None else None
        if spec is None or self.data is None:
            return
        if list(spec["input_shape"]) != list(self.data.input_shape) or spec["num_classes"] != self.data.num_classes:
            raise ConfigError(f"estimator.final scores networks of input {tuple(spec['input_shape'])} with "
                              f"{spec['num_classes']} classes, but dataset {self.data.name} has "
                              f"{tuple(self.data.input_shape)} and {self.data.num_classes}: choose its dataset")

    def _inputs(self) -> proxies.ProxyInputs:
        """The batches the data proxies see: the first `batches` of the shuffled training split."""
        if self.data is None:
            spec = self.network_spec()
            if spec is None:
                raise ConfigError("estimator=zero_cost needs a dataset to know the networks' input")
            return proxies.ProxyInputs([], tuple(spec["input_shape"]), int(spec["num_classes"]))
        batches = []
        if any(proxies.PROXIES[name].needs_data for name in self.proxies):
            device = self.hardware.device
            for x, y in self.data.loader("train", self.batch_size, shuffle=True, seed=self.seed):
                batches.append((x.to(device), y.to(device)))
                if len(batches) == self.batches:
                    break
        return proxies.ProxyInputs(batches, tuple(self.data.input_shape), self.data.num_classes)

    def _lookup_table(self) -> ZeroCostTable | None:
        """The zero-cost table where `table` and the settings say to look up (see the module docstring)."""
        if self.table is False:
            return None
        zc = load_zc_table()
        if not table_fits(self.space, self.proxies, self.batch_size, self.batches):
            if self.table is True:
                raise ConfigError(f"estimator.table=true: the NB201 zero-cost table holds {list(zc.proxies)} of "
                                  "search_space=nb201 at C=16, N=5 with batch_size=64, batches=1; these settings "
                                  "differ (estimator.table=auto computes instead)")
            return None
        if self.table is True or self.data is None:
            if covers(zc, self.space, self.proxies):
                return zc
            if self.table is True or not all(self._data_free()):
                raise zc.missing("every architecture this search can propose", self.proxies)
            return None
        reference = next((arch for arch in zc.archs(self.proxies) if self.space.allows(arch)
                          and all(math.isfinite(v) for v in zc.scores(arch, self.proxies).values())), None)
        if reference is None:
            return None
        return zc if agrees(zc.scores(reference, self.proxies), self._compute(reference)) else None

    def table_pool(self) -> tuple[list, "np.ndarray"] | None:
        """(every architecture the search may propose, their scores: a row each, a column per proxy) when
        the table answers for all of them (each counts as a lookup), else None."""
        if self.lookup is None or not covers(self.lookup, self.space, self.proxies):
            return None
        archs, values = self.lookup.matrix(self.proxies)
        keep = [i for i, arch in enumerate(archs) if self.space.allows(arch)]
        if len(keep) < len(archs):
            archs, values = [archs[i] for i in keep], values[keep]
        self.counts["looked_up"] += len(archs)
        self.last_source = SOURCE
        return archs, values

    def _data_free(self) -> list[bool]:
        return [not proxies.PROXIES[name].needs_data for name in self.proxies]

    def proxy_scores(self, arch: Any) -> dict[str, float]:
        """Each chosen proxy's raw score of `arch`'s network (initialised from the init seed), looked up
        where the table holds it; `last_source` says which."""
        if self.lookup is not None and self.lookup.has(arch, self.proxies):
            self.counts["looked_up"] += 1
            self.last_source = SOURCE
            return self.lookup.scores(arch, self.proxies)
        self.counts["computed"] += 1
        self.last_source = COMPUTED
        return self._compute(arch)

    def _compute(self, arch: Any) -> dict[str, float]:
        seed_everything(self.seed if self.init_seed is None else self.init_seed)
        network = self.space.build(arch, self.inputs.input_shape, self.inputs.num_classes).to(self.hardware.device)
        return proxies.scores(self.proxies, network, self.inputs)

    def combined(self, scores: dict[str, float]) -> float:
        """The one proxy's score, or the mean fraction of the reference sample beaten (ties half)."""
        if len(self.proxies) == 1:
            return scores[self.proxies[0]]
        if self.references is None:
            self._reference_scores()
        fractions = []
        for name, reference in self.references.items():
            if not math.isfinite(scores[name]):  # undefined for this architecture: it beats nothing
                fractions.append(0.0)
                continue
            below, not_above = bisect.bisect_left(reference, scores[name]), bisect.bisect_right(reference, scores[name])
            fractions.append((below + not_above) / (2 * max(len(reference), 1)))
        return sum(fractions) / len(fractions)

    def evaluate(self, arch: Any, seed: int, report: Report = None) -> Evaluation:
        scores = self.proxy_scores(arch)
        source = self.last_source
        undefined = [f"{name}={value}" for name, value in scores.items() if not math.isfinite(value)]
        if len(undefined) == len(scores):
            raise ValueError(f"zero-cost proxy undefined for this architecture ({', '.join(undefined)}); "
                                      "e.g. its output does not depend on its input")
        metrics = {f"zc_{name}": value for name, value in scores.items()}
        return Evaluation(metrics={"zc_score": self.combined(scores), **metrics, "zc_source": source})

    def test(self, arch: Any, evaluation: Evaluation, seed: int) -> dict[str, float] | Evaluation:
        """The proxy score and, with a `final` estimator, the architecture trained by it and tested (with
        the trained weights)."""
        proxy = {"zc_score": evaluation.metrics["zc_score"]}
        if self.final is None:
            return proxy
        trained = self.final.evaluate(arch, seed)
        final = {f"final_{key}": value for key, value in trained.metrics.items()}
        return Evaluation({**self.final.test(arch, trained, seed), **final, **proxy}, weights=trained.weights)
