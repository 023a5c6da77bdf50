"""`python -m xrayhpc.probe`: the command; its code is xrayhpc/study/probe.py."""

from xrayhpc.study.probe import main

if __name__ == "__main__":
    raise SystemExit(main())
