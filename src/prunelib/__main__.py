"""``python -m prunelib`` = the ``prunelib`` command."""

from .cli import main

raise SystemExit(main())
