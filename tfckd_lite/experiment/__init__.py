"""The end-to-end experiment: every distillation method x seeds under one budget, one table.

Notebook: 05_distillation.ipynb

``python -m tfckd_lite reproduce`` (``make reproduce``) runs, with a shipped teacher:

1. **λ tuning on the validation split.** Each KD method is trained with seed ``seeds[0]`` for
   every λ of its grid (:func:`kd_grid`); the λ whose best epoch has the highest *validation*
   PESQ-WB is kept (ties: the smaller λ). The test split plays no part in any choice. The
   grid is log-spaced because the KD terms differ from the SE loss by orders of magnitude
   at initialisation (about 1e-3 to 5e-2 against 0.04 to 1) and from one method to another.
   When the best λ lies at an end of the grid, the optimum may lie beyond it, and a baseline
   tuned only up to its edge would be compared unfairly: the grid is then extended by one
   factor-10 step past that end (e.g. 0.1 after {1, 10, 100}), again if the new value wins,
   at most ``grid_extensions`` times per method (:func:`tuned_grid`); the choice is still
   made on validation PESQ-WB over every λ tried. Each method starts from three factor-10 steps
   centred on the λ a first tuning pass chose (:data:`TUNING_GRIDS`, where the pass is
   described); ``kd_weights`` sets one grid for every method instead.
   The ablations of I2S-TFCKD (``tfckd-time-only``, ``tfckd-freq-only``, ``tfckd-uniform``,
   ``tfckd-uniform-trained-fusion``, ``tfckd-released``: ``METHODS[m].ablation_of``) are tuned
   too, each on three factor-10 steps centred on the λ ``tfckd`` chose, so that each differs
   from the full method in the one component it removes (or, for ``tfckd-released``, swaps)
   at its own best λ (until issue 27 they reused ``tfckd``'s λ; :mod:`.plan` says why that
   changed). ``output-balanced`` is ``output`` tuned only up to the λ where its gradient
   matches the SE loss's (:mod:`.balance`).
2. **The remaining seeds** with the chosen λ (the tuning run of ``seeds[0]`` is reused, so
   every method has the same budget). ``none`` (the student alone) is trained for every seed
   too; the methods of ``extra_seed_methods`` also for ``extra_seeds`` (``make reproduce``:
   seeds 3-5 of ``none``, ``tfckd``, ``frame-similarity`` and ``tfckd-intra``, the leading
   comparisons). A method's seeds may start as soon as its λ is settled, while others still
   tune (:func:`planned_runs`, which also orders the runs so that the leading comparison's
   come first): with ``jobs`` runs side by side, no slot then waits idle for the slowest run
   of a stage.
3. **Test-split scores** of each run's best epoch (chosen, as everywhere, on validation
   PESQ-WB), and of the teacher; the noisy input's scores come with them.
4. **The report**: ``results.json`` (everything, per run and aggregated), ``results.md`` (the
   table) and ``results.png`` (the figure) in the output folder. Per method: mean ± sample
   std over seeds of PESQ-WB, STOI, ESTOI and SI-SDR; the student's parameters and GFLOP per
   second of audio, the extra parameters trained only during distillation, the training wall
   time (epochs × the run's median epoch time, validation included: an epoch stretched by a
   paused process or a busy machine does not count), and the share of the teacher–student gap
   each method closes, ``(method − none) / (teacher − none)`` on the means, and each method's
   means without seed ``seeds[0]``, which chose λ. Then ``tfckd`` against every other method
   (:func:`paired_comparison`) at two levels: clip by clip, the mean per-clip difference of
   PESQ-WB and SI-SDR with a bootstrap interval over the test clips (would another draw of test
   clips change the difference between *these trained students*?), and, against ``none``, the
   same per noise type of the test clips (where the distilled student gains or loses); and seed
   by seed (:mod:`~tfckd_lite.experiment.statistics`), seed *s* against seed *s*, with a paired
   t-test across seeds (would another training seed, i.e. the *method*, give the same
   difference? :func:`paired_verdicts` reads this one), a two-level bootstrap, the variance
   between seeds against that within one, and the seeds each comparison would need (the power
   table). Last, for
   the methods with learnt calibration, how decisive their weights ended up
   (:func:`final_calibration_spread`, against the ceiling of the SemCKD normalisation), and,
   for those whose distiller is kept (:data:`SHIPPED_EXTRAS`), whether each student layer
   weighs most the teacher layer it is closest to (:func:`run_calibration_agreement`).

Every run is an ordinary ``train`` run (:func:`~tfckd_lite.train.run_training` in this process,
or ``python -m tfckd_lite train`` with the same derived flags) in its own folder
(``runs/<method>/lam-<λ>/seed-<s>``, a :class:`~tfckd_lite.run_folder.RunFolder`), with the
experiment's one :class:`~tfckd_lite.train.TrainConfig` and the run's seed, so each can be
re-run alone, and the experiment resumes:
finished runs and cached test scores are kept, an interrupted run continues from its last
checkpoint. ``jobs > 1`` runs that many training processes side by side (on a CPU, two
single-threaded runs finish sooner than two two-threaded runs in a row). A full run takes many
hours on a CPU and is resumed across sessions, so ``<out>/experiment.json`` records the teacher's
sha256, the data's (its files', :func:`~tfckd_lite.data.files_sha256`) and the settings at the
first start, and a resume with another
teacher, data or budget is refused (:func:`check_experiment_folder`); ``--status``
(:func:`status`) prints how far it got.

Across machines. ``make reproduce`` writes into ``experiments/distillation-small/``, which is
part of the repository: what a finished run needs for the table and the shipping (its best
weights, ``history.json``, cached test scores, and the distiller extras of the methods in
:data:`SHIPPED_EXTRAS`) is committed; logs and locks are ignored
(``experiments/distillation-small/.gitignore``). A fresh clone (with ``make data``, which
rebuilds the set bit for bit: the files' sha256 is checked) therefore resumes where the
committed runs stop. For a machine lent for a while there are two budgets:

* ``stop_after`` (``--stop-after``, ``make reproduce STOP_AFTER=2.6``): train for that long,
  then stop the runs in progress, each at its last checkpoint. ``make reproduce-stage``
  (:func:`stage`) commits the finished runs and, force-added past the ``.gitignore``, the
  resume state and outputs of each run in progress (:func:`in_progress_files`; a TFCKD state is
  about 7 MB with its optimiser moments), so the next machine continues those runs where they
  stopped; the state is untracked again once its run has finished. This is what the lent
  2-core sessions use: a TFCKD run takes about 85 min there beside another, so two do not fit
  in a session and waiting for runs to fit leaves a slot idle for a third to a half of it.
* ``hours`` (``--hours``): start a run only when its estimated time (:func:`run_seconds`) fits
  in what is left, and return once no remaining run fits and none is running. Nothing is cut
  off and no resume state needs committing, at the price of idle slots.

An unfinished run whose files were committed without their resume state starts over
(:meth:`Run.orphaned`). Either way the same command resumes later.

On a multi-channel corpus (the simulated L3DAS23 ``mc-small``, ``make reproduce-mc``; Notebook:
07_multichannel.ipynb) ``mics`` (``--mics A``) picks the microphones every run trains on and
every test, teacher and probe score reads; the teacher and student must take that many
channels (``lite-teacher-mc4``, ``lite-student-mc4``), which is checked before any run starts
(:meth:`ExperimentConfig.check_microphones`), and ``experiment.json`` records it like every
other setting (a folder recorded before it existed compares as ``None``, single-channel).
Its ``--ship`` writes under names of its own (:func:`shipped_name`): the students
``lite-student-mc4-<method>`` and the report ``distillation-mics-A.*``, which notebook 07
reads (``shipped_results("A")``).

``--ship`` then exports the best seed (by validation PESQ-WB) of every KD method as
``tfckd_lite/pretrained/lite-student-<method>`` (with the distiller extras of the methods in
:data:`SHIPPED_EXTRAS`) and the report as
``tfckd_lite/pretrained/results/distillation.{json,md,png}`` (and the final runs' per-clip scores,
``distillation.clips.json``, for notebook 08), which notebook 05 and the README
show.

The package, one module per concern (every public name is also importable from here):

==============  =================================================================================
``config``      :class:`ExperimentConfig` (the experiment's settings and one
                :class:`~tfckd_lite.train.TrainConfig`, the budget of every run), :class:`Run`,
                :func:`reproduce_command`
``plan``        λ grids and their extension, the λ choice, the planned runs and their order,
                time estimates
``balance``     the KD/SE gradient ratio that caps a method's λ (``output-balanced``)
``runner``      :func:`train_runs` (scheduling, subprocesses, resuming, budgets) and
                :func:`reproduce`
``results``     test scores, :func:`collect_results`, :func:`paired_comparison` and its verdicts,
                the calibration spread and agreement
``statistics``  seed-level statistics: the paired t-test across seeds, the two-level bootstrap,
                variance components, the seeds a comparison needs (:func:`seeds_needed`)
``report``      the Markdown tables, the figure, :func:`write_report`, :func:`ship`
``clips``       the final runs' per-clip test scores, shipped beside the report
                (:func:`shipped_clip_records`) so that notebook 08 can redo the statistics
``folder``      ``experiment.json`` (:func:`check_experiment_folder`), :func:`status`, what is
                committed (:func:`finished_files`, :func:`in_progress_files`, :func:`stage`)
``cli``         the ``reproduce`` command
==============  =================================================================================
"""

from .cli import register
from .clips import (CLIPS_SUFFIX, clip_records_from_scores, clip_scores, clips_file,
                    run_clip_records, shipped_clip_records, write_clip_scores)
from .config import (MICS, PER_RUN_SETTINGS, SHIPPED_EXTRAS, ExperimentConfig,
                     MicrophoneMismatchError, Run, default_training, reproduce_command)
from .folder import (RECORD_FILE, TEACHER_SCORES_FILE, ExperimentMismatchError,
                     check_experiment_folder, finished_files, format_status, in_progress_files,
                     stage, status)
from .balance import PROBE_BATCHES, kd_gradient_ratio
from .plan import (DEFAULT_GRID, GRID_STEP, TUNING_GRIDS, UNTIMED_FACTOR, ablated_method,
                   centred_grid, choose_kd_weights, epoch_seconds, epoch_times, final_runs,
                   kd_grid, kd_weight_cap, method_groups, method_tuning_runs, planned_runs,
                   run_seconds, settled_kd_weight, tuned_grid, tuning_runs, tuning_scores,
                   validation_score)
from .report import (RESULTS_DIR, SHIPPED_NAME, calibration_markdown, clipping_markdown,
                     paired_markdown, plot_paired, plot_results, plot_tuning, power_markdown,
                     results_markdown, seed_level_markdown, ship, shipped_name, shipped_results,
                     tuning_curves, write_report)
from .results import (METRICS, PAIRED_METRICS, PAIRED_REFERENCE, VERDICT_LEVELS,
                      calibration_probe, collect_results, final_calibration_spread,
                      paired_comparison, paired_verdicts, run_calibration_agreement,
                      run_clipped_fraction, verdict_interval)
from .statistics import (SEEDS_NEEDED_LIMIT, difference_matrix, paired_seed_test, paired_t_power,
                         seed_level_comparison, seeds_needed, shared_seeds, two_level_bootstrap,
                         variance_components)
from .runner import reproduce, train_runs

__all__ = [
    "register", "MICS", "PER_RUN_SETTINGS", "SHIPPED_EXTRAS", "ExperimentConfig",
    "MicrophoneMismatchError", "Run",
    "default_training", "reproduce_command", "RECORD_FILE", "TEACHER_SCORES_FILE",
    "ExperimentMismatchError", "check_experiment_folder", "finished_files", "format_status",
    "in_progress_files", "stage", "status", "DEFAULT_GRID", "GRID_STEP", "TUNING_GRIDS",
    "UNTIMED_FACTOR", "choose_kd_weights", "epoch_seconds", "epoch_times", "final_runs",
    "kd_grid", "ablated_method", "centred_grid", "kd_weight_cap", "method_groups",
    "method_tuning_runs", "PROBE_BATCHES", "kd_gradient_ratio", "planned_runs", "run_seconds",
    "settled_kd_weight", "tuned_grid",
    "tuning_runs", "tuning_scores", "validation_score", "RESULTS_DIR", "SHIPPED_NAME",
    "calibration_markdown", "clipping_markdown", "run_clipped_fraction",
    "paired_markdown",
    "plot_paired", "plot_results", "plot_tuning", "power_markdown",
    "results_markdown", "seed_level_markdown", "ship", "shipped_name", "shipped_results",
    "tuning_curves", "write_report",
    "METRICS", "PAIRED_METRICS", "PAIRED_REFERENCE", "VERDICT_LEVELS", "calibration_probe",
    "collect_results", "final_calibration_spread", "paired_comparison", "paired_verdicts",
    "run_calibration_agreement", "verdict_interval", "SEEDS_NEEDED_LIMIT", "difference_matrix",
    "paired_seed_test", "paired_t_power", "seed_level_comparison", "seeds_needed",
    "shared_seeds", "two_level_bootstrap", "variance_components", "reproduce", "train_runs",
    "CLIPS_SUFFIX", "clip_records_from_scores", "clip_scores", "clips_file", "run_clip_records",
    "shipped_clip_records", "write_clip_scores",
]
