"""`python -m xrayhpc.report`: see xrayhpc/report/cli.py."""

from xrayhpc.report.cli import main

raise SystemExit(main())
