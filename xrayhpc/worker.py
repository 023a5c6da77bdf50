"""`python -m xrayhpc.worker`: the command; its code is xrayhpc/study/worker.py."""

from xrayhpc.study.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
