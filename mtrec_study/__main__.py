import sys

from mtrec_study.cli import main

sys.exit(main())
