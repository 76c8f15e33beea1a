"""Experiments: a readout of an A/B test against its control that checks the split before any metric, uses the
pre-period to shrink the noise (CUPED), corrects for testing many things, and may be looked at daily.

The rules
---------
Who is in it. ``assignments`` is a user-level table ``user_id, variant, assigned_at`` or the name of an
exposure event whose ``variant`` property names the variant (a person's first exposure is their assignment).
Rows without a person, variant or time are dropped and counted. A person assigned to two variants is excluded
and counted; several rows of one variant keep the earliest time. Persons assigned after ``observed_until``
are left out and counted.

The split first. Sample ratio mismatch: a chi-square goodness-of-fit test of the distinct persons per
variant against ``weights`` (equal by default; variants with weight 0 take no part). When p < ``srm_alpha``
the readout says, before any metric, that the split is broken and the results should not be trusted.

Metrics, per person (``conversion``, ``count``, ``value``). The post period starts at the assignment
(inclusive) and lasts ``post_period`` (inclusive), or runs to ``observed_until`` when ``post_period`` is
``None``. A conversion is 1 when the person did the event (or reached step k of an ordered ``compute_funnel``
inside the window, the funnel's rules applying), else 0; a count is the number of events; a value is the
sum of a value column (missing values count 0). Assigned persons without events count 0. Persons whose post
period has not elapsed by ``observed_until`` are excluded from conversion metrics and counted (censoring);
count and value metrics keep them, with the window cut at ``observed_until`` (both arms alike, so the
difference is diluted, not biased).

Tests. Conversions: the pooled two-proportion z test, the unpooled (Wald) interval of the difference, Wilson
intervals per arm. Counts and values, and every CUPED-adjusted metric: Welch's t with Welch-Satterthwaite
degrees of freedom. The relative lift (variant / control − 1) has a delta-method interval. Holm's correction
runs over metrics × variants (× segments with ``by``), separately for the raw and the CUPED results.

CUPED. The covariate X is the same metric over the ``pre_period`` before the assignment (the assignment's
moment excluded); persons with no pre-period data get X = 0. θ = Cov(Y, X) / Var(X) over every person of
every arm; each person's adjusted value is Y − θ(X − X̄_pooled), so an arm's adjusted mean is
Ȳ_arm − θ(X̄_arm − X̄_pooled); the variance reduction 1 − Var(Y_adj) / Var(Y) equals ρ²(X, Y). A conversion
that can only happen after the assignment has X = 0 for everyone, θ = 0 and no reduction.

Sequential. With ``sequential=True`` each result also gets an always-valid confidence sequence: with N
persons, the difference's standard error se, σ̂² = N·se² and mixture parameter
ρ = sqrt((−2 log α + log(1 − 2 log α)) / N*) (N* = ``sequential_tuning``, where it is narrowest), the half
width is σ̂ · sqrt(2(Nρ² + 1) / (N²ρ²) · log(sqrt(Nρ² + 1) / α)) (Waudby-Smith et al. 2023's asymptotic
normal-mixture sequence, after Howard et al. 2021). The chance that it ever excludes the true difference,
however often it is looked at, is at most α. ``sequential_view`` holds daily looks: at each day's end the
persons whose window has elapsed.

Modules
-------
    stats.py     the tests on per-arm summaries (SRM, Welch, two proportions, delta method, CUPED θ, sequences)
    metrics.py   metric specs, assignment tables, one ibis query for every person's post and pre values
    readout.py   readout() and Readout
    reading.py   what the readout says in words, and the call per variant (ship / don't ship / keep running)
"""

from helpers.experiments.metrics import Metric, as_metric, conversion, count, load_assignments, value
from helpers.experiments.readout import Readout, readout
from helpers.experiments.reading import (
    ExperimentInputs,
    cuped_headline,
    decisions,
    experiment_inputs,
    readout_headline,
    segments_headline,
    sequential_headline,
    split_headline,
)

__all__ = ["ExperimentInputs", "Metric", "Readout", "as_metric", "conversion", "count", "cuped_headline",
           "decisions", "experiment_inputs", "load_assignments", "readout", "readout_headline", "segments_headline",
           "sequential_headline", "split_headline", "value"]
