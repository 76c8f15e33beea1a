"""Customer value for businesses without a cancel event: is a customer still a customer, how much will they
buy, and what are they worth (BG/NBD for purchases, Gamma-Gamma for spend, as in the ``lifetimes`` library).

The rules
---------
The summary. Purchases are grouped into periods (``period``: UTC hours, days, Monday-start weeks or calendar
months); a period with purchases is one transaction worth their total value. Per customer (a person with a
purchase): ``frequency`` = distinct purchase periods − 1, ``recency`` = last − first purchase period, ``T`` =
the period of ``observed_until`` − the first purchase period, ``monetary`` = the mean value of the repeat
transactions (0 without repeats). ``observed_until`` defaults to the last event of any kind. With
``calibration_until`` the summary stops there and the holdout columns count what came after.

The models. BG/NBD (Fader, Hardie and Lee 2005): purchases at a Gamma(r, α)-distributed Poisson rate while
alive, and a Beta(a, b)-distributed chance of dropping out after each repeat purchase; ``fit_bgnbd`` maximises
the paper's likelihood (equation 6) with scipy on log parameters; standard errors come from the Hessian,
and a fit that does not converge raises :class:`ConvergenceError` saying what to try. Gamma-Gamma (Fader,
Hardie and Lee 2005b) for spend per transaction, fitted on customers with repeat purchases of positive
value; it warns when frequency and monetary value correlate. ``customer_value`` discounts expected monthly
purchases × expected spend at ``discount_rate`` per 30-day month.

Validated against the published fits on the CDNOW sample (2,357 customers, weeks): BG/NBD r = 0.243,
α = 4.414, a = 0.793, b = 2.426 (log-likelihood −9,582.4); Gamma-Gamma p = 6.25, q = 3.74, γ = 15.44 (946
repeat customers); and on customers simulated from the process (``simulate_bgnbd``).

Modules
-------
    summary.py   purchase_summary: the per-customer table, one ibis query over the events
    fitting.py   maximum likelihood, Hessian standard errors, ConvergenceError, summary checks
    bgnbd.py     the BG/NBD likelihood, BGNBDModel (p_alive, expected purchases, P(X(t)=n)), a simulator
    spend.py     the Gamma-Gamma model and discounted customer value
    checks.py    the calibration / holdout check
    analysis.py  the notebook's page: inputs, both fits, values, p_alive grid, deciles, segments, headlines
"""

from helpers.value.analysis import (
    ValueAnalysis,
    ValueInputs,
    alive_headline,
    audience_headline,
    analyse_value,
    likely_lapsed_high_value,
    model_headline,
    p_alive_grid,
    segment_headline,
    takeaways,
    value_by_segment,
    value_deciles,
    value_headline,
    value_inputs,
    value_page,
)
from helpers.value.bgnbd import (
    BGNBDModel,
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_bgnbd_penalized_if_needed,
    simulate_bgnbd,
    simulate_bgnbd_purchases,
)
from helpers.value.checks import HoldoutCheck, holdout_check
from helpers.value.fitting import ConvergenceError
from helpers.value.spend import GammaGammaModel, customer_value, fit_gamma_gamma, gamma_gamma_log_likelihood
from helpers.value.summary import PERIOD_DAYS, purchase_summary

__all__ = ["ValueAnalysis", "ValueInputs", "alive_headline", "analyse_value", "audience_headline", "likely_lapsed_high_value",
           "model_headline", "p_alive_grid", "segment_headline", "takeaways", "value_by_segment", "value_deciles",
           "value_headline", "value_inputs", "value_page",
           "BGNBDModel", "ConvergenceError", "GammaGammaModel", "HoldoutCheck", "PERIOD_DAYS",
           "bgnbd_log_likelihood", "customer_value", "fit_bgnbd", "fit_bgnbd_penalized_if_needed", "fit_gamma_gamma", "gamma_gamma_log_likelihood",
           "holdout_check", "purchase_summary", "simulate_bgnbd", "simulate_bgnbd_purchases"]
