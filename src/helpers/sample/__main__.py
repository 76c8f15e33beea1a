"""``python -m helpers.sample --out data/sample``: see :func:`helpers.sample.main`."""

from helpers.sample import main

main()
