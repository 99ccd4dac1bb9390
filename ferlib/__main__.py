"""`python -m ferlib ...`"""

import sys

from ferlib.cli import main

sys.exit(main())
