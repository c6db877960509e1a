"""A small, hand-written mutation check on quantlib: does some test notice each planted bug?

Each mutation is one exact text edit (the old text must occur exactly once) in the profiler,
the quantizers, the observers' core, config validation or QuantLinear. It is applied to a
throw-away copy of ``quantlib/``, ``tests/quantlib``, ``tests/reliability``, ``configs/`` and
``pyproject.toml`` in a temp dir (the real files are never touched), then a targeted pytest
subset runs there. A failing run kills the mutation; a passing one lets it survive.

    python benchmarks/mutation_check.py                 # every mutation
    python benchmarks/mutation_check.py -k profiler     # ids containing "profiler"
    python benchmarks/mutation_check.py --list
    python benchmarks/mutation_check.py --tests-rev HEAD  # the tests as committed at HEAD

``--tests-rev`` takes the tests from a git revision (read with ``git show``, no checkout)
and the library from the working tree: "how many survive the old tests" vs the new ones.
Exit status: 0 when every mutation is killed, 1 when some survive, 2 on a broken baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("quantlib", "tests/__init__.py", "tests/quantlib", "tests/reliability", "tests/data",
          "configs",
          "pyproject.toml")
TEST_DIRS = ("tests/quantlib", "tests/reliability")

PROFILER_TESTS = ("tests/quantlib/test_profiler_metrics.py", "tests/quantlib/test_quant_linear.py",
                  "tests/quantlib/test_analysis.py")
QUANTIZER_TESTS = ("tests/quantlib/test_quantizers.py", "tests/quantlib/test_observers.py",
                   "tests/quantlib/test_quant_linear.py",
                   "tests/reliability/test_fuzz_quantizers.py")
OBSERVER_TESTS = ("tests/quantlib/test_observers.py", "tests/quantlib/test_observer_checks.py",
                  "tests/reliability/test_fuzz_quantizers.py")
CONFIG_TESTS = ("tests/quantlib/test_config_loader.py", "tests/quantlib/test_quantizers.py",
                "tests/reliability/test_bad_configs.py", "tests/reliability/test_fuzz_config.py")
LAYER_TESTS = ("tests/quantlib/test_quant_linear.py", "tests/quantlib/test_profiler_metrics.py")


@dataclass(frozen=True)
class Mutation:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    issue18: bool = False  # one of the survivors issue 18 lists


M = Mutation
MUTATIONS = [
    # --- survivors listed in issue 18 (in this scope) -------------------------------------
    M("profiler-per-channel-swap", "quantlib/profiler.py",
      "per_channel = [qsnr_db(a, b) for a, b", "per_channel = [qsnr_db(b, a) for a, b",
      PROFILER_TESTS, True),
    M("profiler-lossless-minus-inf", "quantlib/profiler.py",
      "    if noise <= 0.0:\n        return math.inf",
      "    if noise <= 0.0:\n        return -math.inf", PROFILER_TESTS, True),
    M("profiler-mae-is-max", "quantlib/profiler.py",
      '"mae": s["abs_error"] / n', '"mae": self._max_abs_error', PROFILER_TESTS, True),
    M("memory-qparam-bytes-x4", "quantlib/quant_linear.py",
      "qparams = scale.numel() * 8", "qparams = scale.numel() * 4", LAYER_TESTS, True),
    M("memory-ratio-ignores-qparams", "quantlib/quant_linear.py",
      "fp32 / max(packed + qparams, 1)", "fp32 / max(packed, 1)", LAYER_TESTS, True),
    M("profiler-half-step-2", "quantlib/profiler.py",
      "HALF_STEP = 0.5 * (1 + 1e-5)", "HALF_STEP = 2.0", PROFILER_TESTS, True),
    M("quantizer-levels-ignore-channel", "quantlib/quantizers/quantizer.py",
      "idx = min(channel, scale.numel() - 1)", "idx = 0", QUANTIZER_TESTS, True),
    M("observer-channel-count-check-off", "quantlib/observers/base.py",
      "elif channels != self.num_channels:", "elif False:", OBSERVER_TESTS, True),
    M("stored-cap-off", "quantlib/observers/stored.py",
      "if stored > MAX_STORED_ELEMENTS:", "if False:", OBSERVER_TESTS, True),
    # --- others -----------------------------------------------------------------------------
    M("stored-cap-off-by-one", "quantlib/observers/stored.py",
      "if stored > MAX_STORED_ELEMENTS:", "if stored >= MAX_STORED_ELEMENTS:",
      OBSERVER_TESTS),
    M("stored-counts-refused-batch", "quantlib/observers/stored.py",
      "stored = self._stored + flat.numel()",
      "stored = self._stored = self._stored + flat.numel()", OBSERVER_TESTS),
    M("stored-keeps-last-batch-only", "quantlib/observers/stored.py",
      "self._chunks.append(", "self._chunks.clear() or self._chunks.append(", OBSERVER_TESTS),
    M("ema-momentum-swapped", "quantlib/observers/minmax.py",
      "m = self.config.ema_momentum", "m = 1.0 - self.config.ema_momentum", OBSERVER_TESTS),
    M("observer-min-tracks-max", "quantlib/observers/base.py",
      "self.min_val = torch.minimum(self.min_val, batch_min)",
      "self.min_val = torch.maximum(self.min_val, batch_min)", OBSERVER_TESTS),
    M("profiler-no-rescaling", "quantlib/profiler.py",
      "SAFE_EXPONENT = 40", "SAFE_EXPONENT = 1000", PROFILER_TESTS),
    M("profiler-no-float64-refinement", "quantlib/profiler.py",
      "TINY_NORM = 2.0**-50", "TINY_NORM = 0.0", PROFILER_TESTS),
    M("profiler-mse-over-n-minus-1", "quantlib/profiler.py",
      '"mse": s["noise"] / n', '"mse": s["noise"] / (n - 1)', PROFILER_TESTS),
    M("profiler-cosine-uses-noise", "quantlib/profiler.py",
      'math.sqrt(s["ref_energy"] * s["quant_energy"])',
      'math.sqrt(s["ref_energy"] * (s["quant_energy"] + s["noise"]))',
      PROFILER_TESTS),
    M("profiler-clip-upper-only", "quantlib/profiler.py",
      "return (x < lo - half) | (x > hi + half)", "return x > hi + half", PROFILER_TESTS),
    M("profiler-count-rows", "quantlib/profiler.py",
      "self._count += ref.numel()", "self._count += ref.numel() - 1", PROFILER_TESTS),
    M("profiler-channels-not-accumulated", "quantlib/profiler.py",
      "self._channel_signal = self._channel_signal + channel_signal",
      "self._channel_signal = channel_signal", PROFILER_TESTS),
    M("quantize-floor", "quantlib/quantizers/functional.py",
      "q = torch.round(x.float()", "q = torch.floor(x.float()", QUANTIZER_TESTS),
    M("quantize-divides", "quantlib/quantizers/functional.py",
      "x.float() * torch.reciprocal(scale.float())", "x.float() / scale.float()",
      QUANTIZER_TESTS),
    M("scale-floor-off", "quantlib/quantizers/functional.py",
      "scale = torch.clamp(scale, min=EPS)", "scale = scale", QUANTIZER_TESTS),
    M("unsigned-zero-point-127", "quantlib/quantizers/functional.py",
      "(qmax + qmin + 1) // 2", "(qmax + qmin) // 2", QUANTIZER_TESTS),
    M("affine-zero-point-sign", "quantlib/quantizers/functional.py",
      "zero_point = qmin - torch.round(min_neg / scale)",
      "zero_point = qmin + torch.round(min_neg / scale)", QUANTIZER_TESTS),
    M("grid-range-off-by-one", "quantlib/quantizers/functional.py",
      "(bit_type.qmax - zero_point).float() * scale",
      "(bit_type.qmax - zero_point + 1).float() * scale", QUANTIZER_TESTS),
    M("bit-type-qmax-2^(b-1)", "quantlib/bit_type.py",
      "return 2 ** (self.bits - 1) - 1 if self.signed",
      "return 2 ** (self.bits - 1) if self.signed", QUANTIZER_TESTS),
    M("config-alpha-accepts-0.5", "quantlib/quant_config.py",
      "not 0.5 < self.percentile_alpha <= 1.0", "not 0.5 <= self.percentile_alpha <= 1.0",
      CONFIG_TESTS),
    M("config-ema-accepts-1", "quantlib/quant_config.py",
      "not 0.0 <= self.ema_momentum < 1.0", "not 0.0 <= self.ema_momentum <= 1.0",
      CONFIG_TESTS),
    M("config-omse-steps-unbounded", "quantlib/quant_config.py",
      '_check_int("omse_steps", self.omse_steps, 2, 1000)',
      '_check_int("omse_steps", self.omse_steps, 2, 10**9)', CONFIG_TESTS),
    M("layer-dequant-weight-not-a-buffer", "quantlib/quant_linear.py",
      'self.register_buffer("dequant_weight", None, persistent=False)',
      "self.dequant_weight = None", LAYER_TESTS),
    M("layer-profiles-against-quantized-weight", "quantlib/quant_linear.py",
      "fp32_output = self.fwd_func(x, self.weight, self.bias",
      "fp32_output = self.fwd_func(x, self.dequant_weight, self.bias", LAYER_TESTS),
]


def _copy_tree(dest: Path, tests_rev: str | None) -> None:
    for rel in COPIED:
        src = ROOT / rel
        if rel in ("tests/__init__.py", *TEST_DIRS) and tests_rev is not None:
            continue
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if tests_rev is not None:  # read the revision's tests without touching the checkout
        names = subprocess.run(["git", "ls-tree", "-r", "--name-only", tests_rev, "--",
                                "tests/__init__.py", *TEST_DIRS], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
        for name in names:
            data = subprocess.run(["git", "show", f"{tests_rev}:{name}"], cwd=ROOT, check=True,
                                  capture_output=True).stdout
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)


def _run_tests(workdir: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    present = [t for t in tests if (workdir / t).exists()]
    if not present:
        return "no-tests", 0.0
    env = dict(os.environ, PYTHONPATH=str(workdir), QL_FUZZ_EXAMPLES="40",
               PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", "-p", "no:randomly", *present],
                              cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if proc.returncode == 0:
        return "passed", elapsed
    if proc.returncode == 1:
        return "failed", elapsed
    return f"error(rc={proc.returncode})", elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only mutations whose id contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--tests-rev", default=None,
                        help="take tests/ from this git revision (default: working tree)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutation")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.k in m.id]
    if args.list:
        for m in chosen:
            print(f"{m.id:42s} {m.path}{'  [issue 18]' if m.issue18 else ''}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        work = Path(tmp)
        _copy_tree(work, args.tests_rev)
        union = tuple(sorted({t for m in chosen for t in m.tests}))
        baseline, seconds = _run_tests(work, union, args.timeout)
        print(f"baseline (unmutated, {len(union)} test files): {baseline} in {seconds:.0f} s")
        if baseline != "passed":
            return 2
        killed = survived = 0
        for m in chosen:
            target = work / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                print(f"{'n/a':9s} {m.id}: the old text occurs {original.count(m.old)} times")
                continue
            target.write_text(original.replace(m.old, m.new))
            try:
                outcome, seconds = _run_tests(work, m.tests, args.timeout)
            finally:
                target.write_text(original)
            alive = outcome in ("passed", "no-tests")
            killed, survived = killed + (not alive), survived + alive
            tag = " [issue 18]" if m.issue18 else ""
            print(f"{'SURVIVED' if alive else 'killed':9s} {m.id}{tag} "
                  f"({outcome}, {seconds:.0f} s)", flush=True)
        print(f"total: {killed + survived} mutations, {killed} killed, {survived} survived")
        return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
