"""``python -m helpers.report run --config config/report.yaml``: see :mod:`helpers.report`."""

import sys

from helpers.report.runner import main

sys.exit(main())
