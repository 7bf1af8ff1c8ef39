# Section 6 of notebooks/08_judging_methods.ipynb, kept out of the notebook until
# tfckd_lite.listening (helper `listen`, issue 29 §2) is merged. For the lead:
#   1. insert the two cells below into the notebook right after the code cell with id
#      "a8000016" (the winner's-curse simulation) and its markdown "a8000017" — i.e. move the
#      HTML comment "<!-- Section 6 ... -->" out of cell a8000017 and put these cells after it,
#      before "## Summary" (split a8000017 there: its first paragraph ends section 5);
#   2. add to the learning goals: "- put a small **listening test** (MUSHRA-style, simulated
#      listener) next to PESQ-WB for a few clips, and read its intervals the same way";
#   3. adjust the calls to the merged signatures (they follow the API agreed with `listen`:
#      design_test(clips, systems, seed, *, reference="clean", anchor="anchor-3.5k"),
#      simulated_listener(...), RatingsFile(path), summarise_ratings(ratings),
#      paired_against(ratings, baseline="lite-student"), ratings_beside_metrics(summary, metrics),
#      make_listening_widget(...)), re-run nbval and re-measure the catalog's cpu_time;
#   4. delete this file.
# Format: jupytext "percent" cells; the ids are the cell ids to give them. The code uses
# display, Markdown and METRIC from the notebook's first code cell (id "a8000002").

# %% [markdown] id="a8000030"
# ## 6 · Listening next to PESQ
# PESQ-WB predicts what listeners say; a listening test asks them. The library's MUSHRA-style
# test (`tfckd_lite.listening`) hides the clean reference and a 3.5 kHz low-pass anchor among
# the systems, shuffles their order per trial from a seed, and collects 0–100 ratings. Its
# analysis is the one of this notebook: per system a mean with an interval, and each system
# **paired against the student alone** clip by clip (the same clips, the same listener), next
# to the PESQ-WB of the same clips.
#
# **The ratings below come from a simulated listener, not from people**: a program that rates
# from the signals with noise, so that this section runs unattended. They show how the test is
# built and analysed, not what listeners think. The widget at the end is the real test: rate a
# few trials yourself and re-run the analysis on your own ratings file.

# %% id="a8000031"
import tempfile
from pathlib import Path

from tfckd_lite.compare import default_systems, load_systems
from tfckd_lite.data import build_dataset, open_corpus
from tfckd_lite.listening import (RatingsFile, design_test, make_listening_widget,
                                  paired_against, ratings_beside_metrics, simulated_listener,
                                  summarise_ratings)
from tfckd_lite.locations import data_dir

LISTEN_CLIPS, LISTEN_SEED = 4, 0
test_set = open_corpus(build_dataset(data_dir("mini"), profile="mini", progress=False), "test")
systems = load_systems(default_systems()[:3])            # teacher, student alone, TFCKD student
design = design_test(list(range(min(LISTEN_CLIPS, len(test_set)))), systems, LISTEN_SEED)
ratings_path = Path(tempfile.mkdtemp(prefix="tfckd08-listen-")) / "ratings.csv"
ratings = RatingsFile(ratings_path)
simulated_listener(design, test_set, ratings, seed=LISTEN_SEED)   # NOT human ratings
summary = summarise_ratings(ratings)
versus_student = paired_against(ratings, baseline="lite-student")
display(Markdown(ratings_beside_metrics(summary, metrics=METRIC)))
# what this section teaches, checked: the hidden reference is rated above the anchor, and
# every system's paired difference to the student alone has an interval around its mean
assert summary["clean"]["mean"] > summary["anchor-3.5k"]["mean"]
assert all(e["low"] <= e["mean"] <= e["high"] for e in versus_student.values())
widget = make_listening_widget(design, test_set, ratings)
display(widget)
