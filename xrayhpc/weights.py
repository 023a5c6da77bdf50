"""`python -m xrayhpc.weights`: the command; its code is xrayhpc/study/weights.py."""

from xrayhpc.study.weights import main

if __name__ == "__main__":
    raise SystemExit(main())
