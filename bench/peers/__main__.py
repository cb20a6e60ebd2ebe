"""`python -m bench.peers` (from the repository root): the side-by-side comparison."""

import sys

from bench.peers.compare import main

sys.exit(main())
