import sys

sys.exit(0)  # an app module that exits while importing
