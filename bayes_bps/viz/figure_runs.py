"""The runs behind the paper figures and the notebooks: saved full runs, or tiny fast ones.

Full mode reads the default fit and its `--temperature 0.01` variant from ROOT/runs/, and the
data-efficiency study's CSVs from ROOT/benchmarks/data_efficiency/ (ROOT: the repository, or
wherever the caller says); a run that is missing is fitted (minutes each), one that was
interrupted is resumed. Fast mode proves the code paths in
seconds: it pretrains a two-step 16x16 digits base (the tests' `tiny_base` too) and fits two
20-step runs on it in a work folder. Its numbers and pictures mean nothing.

    inputs = figure_inputs(fast=True, work=Path("/tmp/work"))
    run = load_run(inputs.default)
    rows, folder = study_rows(fast=True, work=Path("/tmp/work"))
    paired = study_paired_rows(folder)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..base.pretraining import PretrainOptions, pretrain
from ..experiments.data_efficiency import data_efficiency, read_results
from ..experiments.options import StudyOptions
from ..experiments.records import read_rows
from ..experiments.tables import paired_rows
from ..training import FitOptions
from ..utils.options import check
from .report import fit_and_report

TEMPERED = 0.01  # a likelihood about 4x stronger than the calibrated default (0.0026 on the default fit)
FULL_RUN = Path("runs/shapes-sketch-bayes-n40-seed0")
STUDY_FOLDER = Path("benchmarks/data_efficiency")
FINISHED = "evaluation.json"  # the last file a fit writes


@dataclass
class FigureInputs:
    """The two run folders (default temperature, tempered) and whether they are fast stand-ins."""

    default: Path
    tempered: Path
    fast: bool
    work: Path | None = None  # fast mode's folder: the tiny base and runs


def ensure_run(options: FitOptions) -> Path:
    """The finished run folder of `options`: fitted if missing, resumed if interrupted."""
    run_dir = options.run_dir
    if (run_dir / FINISHED).is_file():
        return run_dir
    print(f"fitting {run_dir} (not found or unfinished)")
    return fit_and_report(options, resume=(run_dir / "options.json").is_file(), progress=False)


def tiny_base(work: Path) -> Path:
    """A digits base pretrained for two steps at 16x16: every output exists, nothing is good."""
    out = work / "tiny-base"
    if (out / "model_index.json").is_file():
        return out
    return pretrain(PretrainOptions(out=out, domain="digits", resolution=16, unet_preset="tiny",
                                    caption_dim=32, steps=2, batch_size=4, warmup_steps=1,
                                    classifier_steps=2, eval_samples=4, eval_ddim_steps=2))


def fast_options(work: Path) -> FitOptions:
    """The fast mode's run: 20 SVI steps on 10 pairs of the tiny base, sampled with 5 DDIM steps."""
    return FitOptions(base=str(tiny_base(work)), domain="digits", preset="tiny", n_train=10, steps=20,
                      batch_size=4, eval_samples=4, ddim_steps=5, posterior_draws=2, grid_conditions=2,
                      out=str(work / "default"))


def figure_inputs(fast: bool, work: Path | None = None, root: Path = Path(".")) -> FigureInputs:
    """The two runs, made where missing. Fast mode needs `work`, a folder for its tiny runs;
    full mode reads (or fits) them under `root`."""
    if not fast:
        options = FitOptions(out=str(root / FULL_RUN))
        tempered = replace(options, temperature=TEMPERED, out=f"{root / FULL_RUN}-t{TEMPERED}")
        return FigureInputs(ensure_run(options), ensure_run(tempered), fast=False)
    if work is None:
        raise ValueError("fast mode fits tiny runs and needs a work folder")
    options = fast_options(work)
    tempered = replace(options, temperature=TEMPERED, out=str(work / f"t{TEMPERED}"))
    return FigureInputs(ensure_run(options), ensure_run(tempered), fast=True, work=work)


def study_rows(fast: bool, work: Path | None = None, root: Path = Path(".")) -> tuple[list[dict], Path]:
    """The data-efficiency study's rows and the folder they came from.

    Full mode reads ROOT/benchmarks/data_efficiency/results-*.csv. Fast mode, or a checkout with
    no CSV there yet, runs every method for two steps on the tiny base into `work`/study (a
    temporary folder when `work` is None)."""
    folder = root / STUDY_FOLDER
    if not fast and list(folder.glob("results-*.csv")):
        return read_results(folder), folder
    work = work or Path(tempfile.mkdtemp(prefix="bayes_bps-study-"))
    options = check(StudyOptions(study="data-efficiency", out=work / "study", domains=["digits"],
                                 bases=[f"digits={tiny_base(work)}"], n_train=[3, 6], seeds=[0], steps=2,
                                 settings="published", batch_size=2, preset="tiny", eval_samples=4,
                                 reference_samples=4, ddim_steps=2, bootstrap_resamples=20))
    return data_efficiency(options, progress=False), options.out


def study_paired_rows(folder: Path) -> list[dict]:
    """The study folder's paired differences: its paired.csv, which the study writes after its
    grid, or computed from its cells where there is none (fast mode's folder)."""
    return read_rows(Path(folder) / "paired.csv") or paired_rows(folder)
