"""Run reports: one self-contained HTML page per run folder, and one page comparing several runs.

``write_report(run_dir)`` writes ``run_dir/report.html``: the run's model and data, the resolved
config, validation and test metrics, the training curves, test metrics per user-activity bucket,
the top-K lists of a few test users (hits on their test items marked; a path-LM run adds the path
that explains each item) and the environment. ``compare_runs(run_dirs, out)`` puts several runs
side by side: their metrics (the best of each row in bold), the config keys that differ and the
curves. A page needs nothing but itself: the CSS is inline, images are base64 ``data:`` URIs, and
there is no JavaScript. Every piece of text from a run (item titles, ids, config values) is escaped.

A part a run lacks (no buckets, no curve, data no longer there for the sample lists) is left out.
"""

from graphrec.report.folder import RunFolder, read_run
from graphrec.report.pages import compare_runs, write_report
from graphrec.report.samples import sample_recommendations

__all__ = ["RunFolder", "compare_runs", "read_run", "sample_recommendations", "write_report"]
