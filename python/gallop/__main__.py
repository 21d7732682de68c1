"""python -m gallop [OPTIONS] MODULE[:ATTRIBUTE]: the same as running gallop."""
import sys

from gallop import main

sys.exit(main())
