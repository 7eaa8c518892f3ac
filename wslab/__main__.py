import sys

from wslab.cli import main

sys.exit(main())
