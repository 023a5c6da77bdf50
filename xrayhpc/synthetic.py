"""`python -m xrayhpc.synthetic`: the command; its code is xrayhpc/study/synthetic.py."""

from xrayhpc.study.synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
