"""`python -m xrayhpc.audit`: the command; its code is xrayhpc/study/audit.py."""

from xrayhpc.study.audit import main

if __name__ == "__main__":
    raise SystemExit(main())
