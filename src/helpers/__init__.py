"""Customer journey analytics helpers.

One module per concern: ``io`` (load and validate events), ``sample`` (the
bundled synthetic journeys), ``funnel``, ``paths``, ``personas``,
``retention``, ``journey``, ``engagement``, ``audiences``, ``plots`` and
``report``. Analyses take the canonical event table (see :mod:`helpers.io`)
and return small pandas results; :mod:`helpers.plots` draws them.
"""

__version__ = "0.1.0"
