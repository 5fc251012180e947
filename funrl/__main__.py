import sys

from funrl.cli import main

sys.exit(main())
